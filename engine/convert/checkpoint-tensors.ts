/**
 * The tensors of a Hugging Face checkpoint folder, whether it is one
 * `model.safetensors` or shards `model-0000i-of-0000n.safetensors` listed by
 * `model.safetensors.index.json` (`{"metadata": …, "weight_map": {name: shard}}`).
 * Every name the index lists must be in its shard, a shard may hold no
 * tensor the index does not list, and no name may appear in two shards.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { readSafetensorsHeader, writeSafetensors, type SafetensorInfo, type SafetensorToWrite } from './safetensors.ts';

export const SINGLE_FILE = 'model.safetensors';
export const INDEX_FILE = 'model.safetensors.index.json';

export function shardName(i: number, n: number): string {
  const pad = (x: number) => String(x).padStart(5, '0');
  return `model-${pad(i)}-of-${pad(n)}.safetensors`;
}

/** name → where its bytes are, over all shards. */
export function readCheckpointTensors(dir: string): Map<string, SafetensorInfo> {
  const single = join(dir, SINGLE_FILE);
  const index = join(dir, INDEX_FILE);
  if (existsSync(index)) return readSharded(dir, index);
  if (existsSync(single)) return readSafetensorsHeader(single).tensors;
  throw new Error(`${dir}: no ${SINGLE_FILE} and no ${INDEX_FILE} (a Hugging Face checkpoint folder has one of them)`);
}

function readSharded(dir: string, index: string): Map<string, SafetensorInfo> {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(index, 'utf8'));
  } catch (e) {
    throw new Error(`${index}: not valid JSON (${(e as Error).message})`);
  }
  const map = (json as { weight_map?: unknown } | null)?.weight_map;
  if (typeof map !== 'object' || map === null || Array.isArray(map)) throw new Error(`${index}: no "weight_map" object`);
  const byShard = new Map<string, string[]>();
  for (const [name, shard] of Object.entries(map as Record<string, unknown>)) {
    if (typeof shard !== 'string' || shard !== basename(shard)) {
      throw new Error(`${index}: "weight_map"."${name}" must be a file name in the folder, got ${JSON.stringify(shard)}`);
    }
    byShard.set(shard, [...(byShard.get(shard) ?? []), name]);
  }
  const out = new Map<string, SafetensorInfo>();
  for (const [shard, names] of byShard) {
    const path = join(dir, shard);
    if (!existsSync(path)) throw new Error(`${index}: shard ${shard} (holding ${names[0]} and ${names.length - 1} more) is missing`);
    const { tensors } = readSafetensorsHeader(path);
    const listed = new Set(names);
    for (const name of names) {
      const t = tensors.get(name);
      if (!t) throw new Error(`${index}: tensor "${name}" is mapped to ${shard}, which does not hold it`);
      out.set(name, t);
    }
    for (const name of tensors.keys()) {
      if (!listed.has(name)) {
        const other = (map as Record<string, string>)[name];
        throw new Error(
          other === undefined
            ? `${path}: tensor "${name}" is not listed in ${INDEX_FILE}`
            : `tensor "${name}" is in ${shard} and in ${other}; the index names ${other}`,
        );
      }
    }
  }
  return out;
}

/**
 * Writes `tensors` as `model.safetensors` (shards = 1) or as `shards` files
 * plus the index, splitting the list into runs of about equal byte size.
 */
export function writeCheckpointTensors(dir: string, tensors: readonly SafetensorToWrite[], shards = 1, metadata: Record<string, string> = { format: 'pt' }): void {
  if (!Number.isInteger(shards) || shards < 1 || shards > tensors.length) {
    throw new Error(`shard count ${shards} must be 1..${tensors.length} (the number of tensors)`);
  }
  if (shards === 1) {
    writeSafetensors(join(dir, SINGLE_FILE), tensors, metadata);
    return;
  }
  const sizes = tensors.map((t) => (t.data instanceof Uint8Array ? t.data.byteLength : t.data.length * 4));
  const total = sizes.reduce((a, b) => a + b, 0);
  const weightMap: Record<string, string> = {};
  let start = 0;
  let acc = 0;
  for (let s = 1; s <= shards; s++) {
    let end = start;
    // Take tensors until this shard reaches its share, leaving at least one per remaining shard.
    while (end < tensors.length - (shards - s) && (end === start || acc + sizes[end]! <= (total * s) / shards || s === shards)) {
      acc += sizes[end]!;
      end++;
    }
    const name = shardName(s, shards);
    const part = tensors.slice(start, end);
    for (const t of part) weightMap[t.name] = name;
    writeSafetensors(join(dir, name), part, metadata);
    start = end;
  }
  writeFileSync(join(dir, INDEX_FILE), JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2) + '\n');
}
