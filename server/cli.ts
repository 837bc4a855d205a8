/**
 * The `braid` command: serve, init, train, convert, bench, --help, --version. Returns an exit code
 * instead of calling process.exit so it can be driven from tests. Bad
 * arguments (a ConfigError) are exit code 2 and a runtime failure is exit
 * code 1, each with one message on stderr, `braid <command>: ...`, never a
 * stack trace.
 */
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { checkModelFiles, ConfigError, PACKAGE_ROOT, parseServeArgs, SERVE_HELP } from './config.ts';
import { VERSION } from './ids.ts';

export const USAGE = `braid ${VERSION} — a local OpenAI-compatible inference server for ternary hybrid-recurrent models

Usage:
  braid serve [flags]               start the HTTP server (braid serve --help for flags)
  braid init <out.gguf> [flags]     write a randomly initialised model (braid init --help)
  braid train [flags]               train a model, checkpointed and resumable (braid train --help)
  braid convert <hf-dir> <out.gguf> import a Hugging Face MoA / Chimera 5.1 checkpoint (braid convert --help)
  braid bench <name> [options]      run a benchmark: kernels, decode, grammar, valve, train, finetune
                                    or moa (braid bench --help)
  braid help <command>              a command's help
  braid --help | --version
`;

export interface Io {
  out: (s: string) => void;
  err: (s: string) => void;
}

const COMMANDS: readonly string[] = ['serve', 'init', 'train', 'convert', 'bench'];

const stdio: Io = { out: (s) => process.stdout.write(s), err: (s) => process.stderr.write(s) };

export async function main(argv: readonly string[], io: Io = stdio): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'help':
        // `braid help serve` is `braid serve --help`.
        if (rest[0] === undefined) {
          io.out(USAGE);
          return 0;
        }
        if (COMMANDS.includes(rest[0])) return await main([rest[0], '--help'], io);
        io.err(`braid help: unknown command '${rest[0]}' (one of ${COMMANDS.join(', ')})\n`);
        return 2;
      case undefined:
      case '--help':
      case '-h':
        io.out(USAGE);
        return 0;
      case '--version':
      case '-v':
        io.out(`${VERSION}\n`);
        return 0;
      case 'serve':
        return await serveCommand(rest, io);
      case 'init': {
        // Imported here so the other commands never load the model writer.
        const { initCommand } = await import('./init-command.ts');
        return await initCommand(rest, io);
      }
      case 'train': {
        // Imported here so the other commands never load the trainer.
        const { trainCommand } = await import('./train-command.ts');
        return await trainCommand(rest, io);
      }
      case 'convert': {
        // Imported here so the other commands never load the converter.
        const { convertCommand } = await import('./convert-command.ts');
        return await convertCommand(rest, io);
      }
      case 'bench':
        return await benchCommand(rest, io);
      default:
        io.err(`braid: unknown command '${command}'\n\n${USAGE}`);
        return 2;
    }
  } catch (err) {
    if (err instanceof ConfigError) {
      io.err(`braid ${command}: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
}

async function serveCommand(args: readonly string[], io: Io): Promise<number> {
  const parsed = parseServeArgs(args, process.env);
  if (parsed.help) {
    io.out(SERVE_HELP);
    return 0;
  }
  const config = parsed.config;
  checkModelFiles(config);
  for (const file of config.models) if (statSync(file).isDirectory()) throw new ConfigError(`--model: ${file} is a directory, not a GGUF file`);
  let dataDir = config.dataDir; // it is created when missing: its nearest existing ancestor must be a directory
  while (!existsSync(dataDir)) dataDir = path.dirname(dataDir);
  if (!statSync(dataDir).isDirectory()) throw new ConfigError(`--data-dir: ${config.dataDir}: ${dataDir} is not a directory`);
  // Imported here so --help and config errors never load the native library.
  const { startServer } = await import('./serve.ts');
  let server: Awaited<ReturnType<typeof startServer>>;
  try {
    server = await startServer(config);
  } catch (err) {
    io.err(`braid serve: ${startFailure(err, config)}\n`);
    return 1;
  }
  io.out(`braid ${VERSION} listening on ${server.url}\n`);
  io.out(`models: ${server.engine.models().map((m) => `${m.info.id} (${m.info.provenance})`).join(', ')}\n`);
  io.out(`system: ${JSON.stringify(server.engine.systemInfo())}\n`);
  if (config.apiKey !== undefined) io.out('API key required (Authorization: Bearer …)\n');

  await new Promise<void>((resolve) => {
    let signals = 0;
    const onSignal = (signal: NodeJS.Signals): void => {
      signals += 1;
      if (signals > 1) {
        io.err(`braid: second ${signal}, exiting now\n`);
        process.exit(130);
      }
      io.out(`braid: ${signal} received, finishing open requests (again to force)\n`);
      server.close().then(resolve, (err: unknown) => {
        io.err(`braid: error while shutting down: ${String(err)}\n`);
        resolve();
      });
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
  return 0;
}

/** Why the server did not start, naming the address for a listen error (model errors name their file). */
function startFailure(err: unknown, config: { host: string; port: number }): string {
  const field = (name: string): string => (typeof err === 'object' && err !== null && name in err ? String((err as Record<string, unknown>)[name]) : '');
  // Only errors of binding the socket: an EACCES reading a model file is its own message.
  const code = field('syscall') === 'listen' || field('syscall') === 'getaddrinfo' ? field('code') : '';
  const address = `${config.host.includes(':') ? `[${config.host}]` : config.host}:${config.port}`;
  const listen: Readonly<Record<string, string>> = {
    EADDRINUSE: 'the port is in use (pass another --port, or --port 0 for a free one)',
    EACCES: 'permission denied (ports below 1024 need privileges)',
    EADDRNOTAVAIL: 'the address is not one of this machine\'s (--host)',
    ENOTFOUND: 'the host name does not resolve (--host)',
    EAI_AGAIN: 'the host name does not resolve (--host)',
  };
  const reason = listen[code];
  if (reason !== undefined) return `cannot listen on ${address}: ${reason}`;
  return err instanceof Error ? err.message : String(err);
}

interface BenchModule {
  runBench: (args: string[], io: Io) => unknown;
}

function isBenchModule(m: unknown): m is BenchModule {
  return typeof m === 'object' && m !== null && 'runBench' in m && typeof m.runBench === 'function';
}

async function benchCommand(args: readonly string[], io: Io): Promise<number> {
  const file = path.join(PACKAGE_ROOT, 'scripts', 'bench.ts');
  if (!existsSync(file)) {
    io.err(`braid bench: the benchmarks are not available: ${file} is missing\n`);
    return 1;
  }
  const mod: unknown = await import(pathToFileURL(file).href);
  if (!isBenchModule(mod)) {
    io.err(`braid bench: ${file} does not export runBench(args, io)\n`);
    return 1;
  }
  try {
    const result = await mod.runBench([...args], io);
    return typeof result === 'number' ? result : 0;
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    // A benchmark that fails (a missing C binary, a native error): the message, not a stack.
    io.err(`braid bench: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
}
