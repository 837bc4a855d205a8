/**
 * The `braid` command: serve, init, train, convert, bench, --help, --version. Returns an exit code
 * instead of calling process.exit so it can be driven from tests; bad
 * arguments are exit code 2 with a message on stderr.
 */
import { existsSync } from 'node:fs';
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
  braid bench <kernels|decode> ...  run a benchmark (scripts/bench.ts)
  braid --help | --version
`;

export interface Io {
  out: (s: string) => void;
  err: (s: string) => void;
}

const stdio: Io = { out: (s) => process.stdout.write(s), err: (s) => process.stderr.write(s) };

export async function main(argv: readonly string[], io: Io = stdio): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case undefined:
      case '--help':
      case '-h':
      case 'help':
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
      io.err(`braid: ${err.message}\n`);
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
  // Imported here so --help and config errors never load the native library.
  const { startServer } = await import('./serve.ts');
  const server = await startServer(config);
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

interface BenchModule {
  runBench: (args: string[]) => unknown;
}

function isBenchModule(m: unknown): m is BenchModule {
  return typeof m === 'object' && m !== null && 'runBench' in m && typeof m.runBench === 'function';
}

async function benchCommand(args: readonly string[], io: Io): Promise<number> {
  const file = path.join(PACKAGE_ROOT, 'scripts', 'bench.ts');
  if (!existsSync(file)) {
    io.err(`braid: the benchmarks are not available: ${file} is missing\n`);
    return 1;
  }
  const mod: unknown = await import(pathToFileURL(file).href);
  if (!isBenchModule(mod)) {
    io.err(`braid: ${file} does not export runBench(args)\n`);
    return 1;
  }
  const result = await mod.runBench([...args]);
  return typeof result === 'number' ? result : 0;
}
