/**
 * Server configuration from command-line flags and BRAID_* environment
 * variables. A flag always wins over its variable. Parsing is pure (no file
 * system access) so it can be tested; checkModelFiles() is the one place that
 * looks at the disk, called by the CLI before the engine loads.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

export interface ServerConfig {
  host: string;
  /** 0 asks the OS for a free port; startServer reports the real one. */
  port: number;
  /** Absolute paths of the GGUF files to serve. */
  models: string[];
  /** undefined: the engine picks (physical cores, cgroup aware). */
  threads: number | undefined;
  /** undefined: no authentication. */
  apiKey: string | undefined;
  dataDir: string;
  /** null: CORS off (no headers sent); otherwise the allowed origins ('*' allowed). */
  corsOrigins: string[] | null;
  maxBodyBytes: number;
  /** undefined: the engine's default. */
  maxQueue: number | undefined;
  slots: number | undefined;
}

/** A bad flag or variable: the CLI prints the message and exits with status 2. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/** The repository / package root: ids resolve to <root>/models/<id>.gguf. */
export const PACKAGE_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export const DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024;

export const SERVE_HELP = `Usage: braid serve [flags]

Flags (each also read from its environment variable; the flag wins):
  --host <addr>           bind address                  BRAID_HOST       (127.0.0.1)
  --port <n>              port, 0 picks a free one      BRAID_PORT       (8080)
  --model <path|id>       model file or id; repeat the  BRAID_MODEL      (models/chimera-tiny.gguf)
                          flag (env: comma-separated);
                          an id means models/<id>.gguf
  --threads <n>           compute threads               BRAID_THREADS    (physical cores)
  --api-key <key>         require Authorization: Bearer BRAID_API_KEY    (none)
  --data-dir <dir>        files, fine-tuning jobs and   BRAID_DATA_DIR   (./data)
                          fine-tuned models
  --cors-origin <origin>  allowed CORS origin(s), comma BRAID_CORS_ORIGIN (off)
                          separated, or *
  --max-body-bytes <n>    larger request bodies → 413   BRAID_MAX_BODY_BYTES (4194304)
  --max-queue <n>         waiting requests per model    BRAID_MAX_QUEUE  (engine default)
  --slots <n>             concurrent generations/model  BRAID_SLOTS      (engine default)
  -h, --help              this help
`;

const OPTIONS = {
  host: { type: 'string' },
  port: { type: 'string' },
  model: { type: 'string', multiple: true },
  threads: { type: 'string' },
  'api-key': { type: 'string' },
  'data-dir': { type: 'string' },
  'cors-origin': { type: 'string' },
  'max-body-bytes': { type: 'string' },
  'max-queue': { type: 'string' },
  slots: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

export type ParsedServeArgs = { help: true } | { help: false; config: ServerConfig };

/**
 * Parses `braid serve` flags (argv without the command) and the environment.
 * Throws ConfigError with a readable message on any bad value.
 */
export function parseServeArgs(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
  cwd: string = process.cwd(),
): ParsedServeArgs {
  let values;
  try {
    ({ values } = parseArgs({ args: [...argv], options: OPTIONS, strict: true, allowPositionals: false }));
  } catch (err) {
    throw new ConfigError(`${err instanceof Error ? err.message : String(err)}\nRun 'braid serve --help' for the flags.`);
  }
  if (values.help === true) return { help: true };

  const pick = (flag: string | undefined, name: string): { value: string; source: string } | undefined => {
    if (flag !== undefined) return { value: flag, source: `--${name}` };
    const envName = `BRAID_${name.toUpperCase().replaceAll('-', '_')}`;
    const fromEnv = env[envName];
    return fromEnv !== undefined && fromEnv !== '' ? { value: fromEnv, source: envName } : undefined;
  };

  const modelSpecs =
    values.model !== undefined && values.model.length > 0
      ? values.model
      : splitList(env['BRAID_MODEL'] ?? '');
  const models = (modelSpecs.length > 0 ? modelSpecs : ['chimera-tiny']).map((spec) => resolveModelSpec(spec, cwd));

  const cors = pick(values['cors-origin'], 'cors-origin');
  const corsOrigins = cors === undefined ? null : splitList(cors.value);
  if (corsOrigins !== null && corsOrigins.length === 0) throw new ConfigError(`${cors?.source}: expected an origin or *`);

  const apiKey = pick(values['api-key'], 'api-key');
  if (apiKey !== undefined && apiKey.value.trim() === '') throw new ConfigError(`${apiKey.source}: the key is empty`);
  const dataDir = pick(values['data-dir'], 'data-dir');

  return {
    help: false,
    config: {
      host: pick(values.host, 'host')?.value ?? '127.0.0.1',
      port: integer(pick(values.port, 'port'), 0, 65535) ?? 8080,
      models,
      threads: integer(pick(values.threads, 'threads'), 1, 1024),
      apiKey: apiKey?.value,
      dataDir: path.resolve(cwd, dataDir?.value ?? 'data'),
      corsOrigins,
      maxBodyBytes: integer(pick(values['max-body-bytes'], 'max-body-bytes'), 1, 2 ** 31) ?? DEFAULT_MAX_BODY_BYTES,
      maxQueue: integer(pick(values['max-queue'], 'max-queue'), 0, 1_000_000),
      slots: integer(pick(values.slots, 'slots'), 1, 1024),
    },
  };
}

/** A default configuration (tests and embedders override fields). */
export function defaultConfig(overrides: Partial<ServerConfig> = {}): ServerConfig {
  const parsed = parseServeArgs([], {});
  if (parsed.help) throw new Error('unreachable: no --help given');
  return { ...parsed.config, ...overrides };
}

/** A value naming a file (has a separator or ends in .gguf) is a path; anything else is a model id. */
export function resolveModelSpec(spec: string, cwd: string): string {
  const trimmed = spec.trim();
  if (trimmed === '') throw new ConfigError('--model: empty model name');
  const isPath = trimmed.includes('/') || trimmed.includes(path.sep) || trimmed.endsWith('.gguf');
  if (isPath) return path.resolve(cwd, trimmed);
  if (!/^[A-Za-z0-9._-]+$/.test(trimmed)) throw new ConfigError(`--model: '${trimmed}' is neither a path nor a model id`);
  return path.join(PACKAGE_ROOT, 'models', `${trimmed}.gguf`);
}

/** Throws ConfigError naming the first model file that does not exist. */
export function checkModelFiles(config: ServerConfig): void {
  for (const file of config.models) {
    if (!existsSync(file)) {
      throw new ConfigError(
        `model file not found: ${file}\n(the default model models/chimera-tiny.gguf is committed with the repository, and 'npm run train:default' rebuilds it; pass --model <path|id> for another)`,
      );
    }
  }
}

function splitList(value: string): string[] {
  return value
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

function integer(raw: { value: string; source: string } | undefined, min: number, max: number): number | undefined {
  if (raw === undefined) return undefined;
  const n = /^\s*-?\d+\s*$/.test(raw.value) ? Number(raw.value) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new ConfigError(`${raw.source}: expected an integer from ${min} to ${max}, got '${raw.value}'`);
  }
  return n;
}
