/**
 * Writes a trained model as GGUF: the base model's metadata (architecture,
 * hyper-parameters, tokenizer, chat template) and tensor table unchanged,
 * with a new general.name, a braid.provenance saying how it was made, and the
 * braid.train.* keys of docs/training.md. Tensor data comes from the
 * trainer (FP32 masters converted back to each tensor's GGUF type in C).
 * The write is atomic (engine/gguf/writer.ts), so a crash during export
 * leaves any previous file at the output path intact.
 */
import { createHash } from 'node:crypto';
import { ggmlTypeName, gv, metaOptString, type GgufFile, type GgufValue } from '../gguf/types.ts';
import { readGguf } from '../gguf/reader.ts';
import { writeGguf, type GgufTensorSpec } from '../gguf/writer.ts';

/** What export needs of a trainer (NativeTrainer satisfies it). */
export interface ExportableTrainer {
  readonly params: readonly { index: number; name: string; ggufType: number }[];
  exportTensor(index: number): Uint8Array;
}

export interface TrainingSummary {
  /** general.name of the new model. */
  name: string;
  recipe: string;
  steps: number;
  tokens: number;
  /** Mean train loss of the last step, nats/token. */
  finalLoss: number | null;
  heldOutLoss: number | null;
  heldOutBpb: number | null;
  seed: number;
  configHash: string;
  date: Date;
}

const TRAIN_PREFIX = 'braid.train.';

/** The provenance line, e.g. "trained by braid train: default, 1000 steps, 4096000 tokens, 2025-01-31 (from chimera-tiny)". */
export function provenanceOf(s: TrainingSummary, baseName: string | undefined): string {
  const day = s.date.toISOString().slice(0, 10);
  return `trained by braid train: ${s.recipe}, ${s.steps} steps, ${s.tokens} tokens, ${day}${baseName ? ` (from ${baseName})` : ''}`;
}

/** The exported metadata: base entries in their order, renamed, old training keys replaced. */
export function exportMetadata(base: GgufFile, s: TrainingSummary): [string, GgufValue][] {
  const baseName = metaOptString(base.metadata, 'general.name');
  const out: [string, GgufValue][] = [];
  let sawProvenance = false;
  for (const [key, value] of base.metadata) {
    if (key.startsWith(TRAIN_PREFIX)) continue; // a fine-tune of a trained model describes only its own run
    if (key === 'general.name') out.push([key, gv.str(s.name)]);
    else if (key === 'braid.provenance') {
      out.push([key, gv.str(provenanceOf(s, baseName))]);
      sawProvenance = true;
    } else out.push([key, value]);
  }
  if (!base.metadata.has('general.name')) out.push(['general.name', gv.str(s.name)]);
  if (!sawProvenance) out.push(['braid.provenance', gv.str(provenanceOf(s, baseName))]);
  out.push(
    [`${TRAIN_PREFIX}steps`, gv.u32(s.steps)],
    [`${TRAIN_PREFIX}tokens`, gv.u64(BigInt(s.tokens))],
    [`${TRAIN_PREFIX}recipe`, gv.str(s.recipe)],
    [`${TRAIN_PREFIX}seed`, gv.u32(s.seed)],
    [`${TRAIN_PREFIX}config_hash`, gv.str(s.configHash)],
    [`${TRAIN_PREFIX}date`, gv.str(s.date.toISOString())],
  );
  if (baseName !== undefined) out.push([`${TRAIN_PREFIX}base`, gv.str(baseName)]);
  if (s.finalLoss !== null) out.push([`${TRAIN_PREFIX}final_loss`, gv.f32(s.finalLoss)]);
  if (s.heldOutLoss !== null) out.push([`${TRAIN_PREFIX}heldout_loss`, gv.f32(s.heldOutLoss)]);
  if (s.heldOutBpb !== null) out.push([`${TRAIN_PREFIX}heldout_bpb`, gv.f32(s.heldOutBpb)]);
  return out;
}

/**
 * Matches the base file's tensors to the trainer's parameters by name and
 * type; throws naming the first mismatch (a trainer opened on another model).
 */
export function matchTensors(base: GgufFile, trainer: ExportableTrainer): number[] {
  const byName = new Map(trainer.params.map((p) => [p.name, p]));
  if (trainer.params.length !== base.tensors.length) {
    throw new Error(`the trainer has ${trainer.params.length} parameters but the base model has ${base.tensors.length} tensors`);
  }
  return base.tensors.map((t) => {
    const p = byName.get(t.name);
    if (p === undefined) throw new Error(`base tensor "${t.name}" has no trainer parameter`);
    if (p.ggufType !== t.type) {
      throw new Error(`tensor "${t.name}": trainer exports ${ggmlTypeName(p.ggufType)}, the base model stores ${ggmlTypeName(t.type)}`);
    }
    return p.index;
  });
}

export async function exportModel(basePath: string, outPath: string, trainer: ExportableTrainer, summary: TrainingSummary): Promise<void> {
  const base = await readGguf(basePath);
  const indices = matchTensors(base, trainer);
  const tensors: GgufTensorSpec[] = base.tensors.map((t, i) => ({
    name: t.name,
    type: t.type,
    dims: t.dims,
    // Lazy, one tensor at a time, so only one exported copy is in memory at once.
    data: () => [trainer.exportTensor(indices[i]!)],
  }));
  await writeGguf(outPath, { metadata: exportMetadata(base, summary), tensors });
}

/**
 * Identifies a model's shape for the config hash: its tensor table (names,
 * types, dims) and hyper-parameter keys, not its weights (hashing GBs of
 * data on every start would cost more than it protects: the checkpoint holds
 * the weights anyway).
 */
export function modelFingerprint(file: GgufFile): string {
  const h = createHash('sha256');
  for (const t of file.tensors) h.update(`${t.name}:${t.type}:${t.dims.join('x')};`);
  for (const [k, v] of file.metadata) {
    if (k.startsWith('tokenizer.') || k.startsWith(TRAIN_PREFIX) || k === 'general.name' || k === 'braid.provenance') continue;
    h.update(`${k}=${JSON.stringify(v.value, (_, x: unknown) => (typeof x === 'bigint' ? x.toString() : x))};`);
  }
  return h.digest('hex').slice(0, 16);
}
