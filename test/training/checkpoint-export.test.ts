/**
 * Model export: the base model's metadata and tensor table are kept, the name
 * and provenance replaced, braid.train.* added; tensor bytes come from the
 * trainer in the base's order. A stand-in trainer that returns the base's
 * own bytes makes the data section byte-identical, so the test needs no
 * native code.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readGguf } from '../../engine/gguf/reader.ts';
import { GgmlType, metaNumber, metaString, type GgufFile } from '../../engine/gguf/types.ts';
import { chimeraTinyConfig } from '../../engine/model-init/chimera-config.ts';
import { writeRandomChimera } from '../../engine/model-init/init-chimera.ts';
import { exportMetadata, exportModel, modelFingerprint, provenanceOf, type ExportableTrainer, type TrainingSummary } from '../../engine/training/export-model.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'braid-export-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const basePath = path.join(dir, 'base.gguf');
let base: GgufFile;
let baseBytes: Buffer;

beforeAll(async () => {
  const config = { ...chimeraTinyConfig(4096), name: 'base-model', embeddingLength: 128, feedForwardLength: 256, layerTypes: ['GD' as const, 'GD' as const], headCount: 2 };
  await writeRandomChimera(basePath, config, 11);
  base = await readGguf(basePath);
  baseBytes = readFileSync(basePath);
});

/** Parameters in reverse file order, so the export must map by name. */
function standIn(file: GgufFile, bytes: Buffer): ExportableTrainer {
  const order = [...file.tensors].reverse();
  return {
    params: order.map((t, index) => ({ index, name: t.name, ggufType: t.type })),
    exportTensor: (i) => {
      const t = order[i]!;
      return bytes.subarray(t.fileOffset, t.fileOffset + t.byteSize!);
    },
  };
}

const summary: TrainingSummary = {
  name: 'trained-small',
  recipe: 'default',
  steps: 120,
  tokens: 245760,
  finalLoss: 3.5,
  heldOutLoss: 3.75,
  heldOutBpb: 1.25,
  seed: 4,
  configHash: '0123456789abcdef',
  date: new Date('2025-03-04T05:06:07Z'),
};

describe('exportModel', () => {
  it('keeps metadata and tensors, renames, records provenance and braid.train.*', async () => {
    const out = path.join(dir, 'out.gguf');
    await exportModel(basePath, out, standIn(base, baseBytes), summary);
    const file = await readGguf(out);
    const meta = file.metadata;
    expect(metaString(meta, 'general.name')).toBe('trained-small');
    expect(metaString(meta, 'braid.provenance')).toBe('trained by braid train: default, 120 steps, 245760 tokens, 2025-03-04 (from base-model)');
    expect(metaNumber(meta, 'braid.train.steps')).toBe(120);
    expect(metaNumber(meta, 'braid.train.tokens')).toBe(245760);
    expect(metaNumber(meta, 'braid.train.final_loss')).toBe(3.5);
    expect(metaNumber(meta, 'braid.train.heldout_bpb')).toBe(1.25);
    expect(metaString(meta, 'braid.train.base')).toBe('base-model');
    expect(metaString(meta, 'braid.train.config_hash')).toBe('0123456789abcdef');
    // everything else unchanged, in the same order
    const rest = (m: GgufFile['metadata']) => [...m].filter(([k]) => k !== 'general.name' && k !== 'braid.provenance' && !k.startsWith('braid.train.'));
    expect(rest(meta)).toEqual(rest(base.metadata));
    expect(file.tensors.map((t) => [t.name, t.type, t.dims])).toEqual(base.tensors.map((t) => [t.name, t.type, t.dims]));
    const outBytes = readFileSync(out);
    expect(outBytes.subarray(file.dataOffset).equals(baseBytes.subarray(base.dataOffset))).toBe(true);
    expect(modelFingerprint(file)).toBe(modelFingerprint(base));

    // exporting a trained model again replaces its braid.train.* keys rather than duplicating them
    const again = path.join(dir, 'again.gguf');
    await exportModel(out, again, standIn(file, outBytes), { ...summary, name: 'second', steps: 5 });
    const second = await readGguf(again);
    expect(metaNumber(second.metadata, 'braid.train.steps')).toBe(5);
    expect(metaString(second.metadata, 'braid.provenance')).toMatch(/5 steps.*\(from trained-small\)$/);
  });

  it('refuses a trainer for another model, naming the tensor', async () => {
    const t = standIn(base, baseBytes);
    const wrongType: ExportableTrainer = { ...t, params: t.params.map((p) => (p.name === 'blk.0.gdn_q.weight' ? { ...p, ggufType: GgmlType.F32 } : p)) };
    await expect(exportModel(basePath, path.join(dir, 'x.gguf'), wrongType, summary)).rejects.toThrow(/tensor "blk\.0\.gdn_q\.weight": trainer exports F32, the base model stores BT2/);
    const missing: ExportableTrainer = { ...t, params: t.params.map((p) => (p.name === 'output_norm.weight' ? { ...p, name: 'other' } : p)) };
    await expect(exportModel(basePath, path.join(dir, 'x.gguf'), missing, summary)).rejects.toThrow(/"output_norm\.weight" has no trainer parameter/);
    const short: ExportableTrainer = { ...t, exportTensor: (i) => t.exportTensor(i).subarray(1) };
    await expect(exportModel(basePath, path.join(dir, 'x.gguf'), short, summary)).rejects.toThrow(/expected/);
  });

  it('omits the held-out keys without an evaluation, and the base name when the base has none', () => {
    const keys = exportMetadata(base, { ...summary, heldOutLoss: null, heldOutBpb: null }).map(([k]) => k);
    expect(keys).toContain('braid.train.final_loss');
    expect(keys.filter((k) => k.startsWith('braid.train.heldout'))).toEqual([]);
    expect(provenanceOf({ ...summary, recipe: 'r' }, undefined)).toBe('trained by braid train: r, 120 steps, 245760 tokens, 2025-03-04');
  });
});
