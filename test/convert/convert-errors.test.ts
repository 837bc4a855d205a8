/**
 * What `braid convert` says when a folder cannot be converted — every problem named, all
 * listed in one error — and the command line around it (help, argument errors exit 2,
 * conversion errors exit 1 on stderr, --force, no file left behind by a failed run).
 */
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CheckpointMismatchError } from '../../engine/convert/tensor-check.ts';
import { planConversion } from '../../engine/convert/convert.ts';
import { readSafetensorsHeader, readTensorF32, writeSafetensors, type SafetensorToWrite } from '../../engine/convert/safetensors.ts';
import { main, type Io } from '../../server/cli.ts';
import { writeMoaHfFolder } from '../../scripts/reference/make-hf-checkpoint.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'braid-convert-errors-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
function moaFolder(): string {
  const d = path.join(dir, `moa-${n++}`);
  writeMoaHfFolder(d, { layers: 1 });
  return d;
}

/** Rewrites model.safetensors through `edit`. */
function editTensors(folder: string, edit: (ts: SafetensorToWrite[]) => SafetensorToWrite[]): void {
  const file = path.join(folder, 'model.safetensors');
  const { tensors } = readSafetensorsHeader(file);
  const ts: SafetensorToWrite[] = [...tensors.values()].map((t) => ({ name: t.name, shape: t.shape, dtype: t.dtype, data: readTensorF32(t) }));
  writeSafetensors(file, edit(ts));
}

function patchConfig(folder: string, patch: Record<string, unknown>): void {
  const file = path.join(folder, 'config.json');
  writeFileSync(file, JSON.stringify({ ...(JSON.parse(readFileSync(file, 'utf8')) as object), ...patch }));
}

function planError(input: string, arch?: string): Error {
  try {
    planConversion({ input, output: path.join(dir, 'never.gguf'), ...(arch ? { arch } : {}) });
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected the conversion to fail');
}

describe('braid convert: errors name the offender', () => {
  it('unknown, missing, mis-shaped and non-float tensors are all listed in one error', () => {
    const d = moaFolder();
    editTensors(d, (ts) => [
      ...ts
        .filter((t) => t.name !== 'model.layers.0.mha.alpha_raw')
        .map((t) => (t.name === 'model.layers.0.ffn.lowrank.up.weight' ? { ...t, shape: [8, 32] } : t))
        .map((t) =>
          t.name === 'model.norm.bias' ? { ...t, dtype: 'I32' as const, data: new Uint8Array((t.data as Float32Array).length * 4) } : t,
        ),
      { name: 'model.layers.0.mha.q_bias', shape: [32], dtype: 'F32', data: new Float32Array(32) },
    ]);
    const e = planError(d);
    expect(e).toBeInstanceOf(CheckpointMismatchError);
    expect(e.message).toMatch(/unknown tensors \(1\): model\.layers\.0\.mha\.q_bias/);
    expect(e.message).toMatch(/missing tensors \(1\): model\.layers\.0\.mha\.alpha_raw \[4\]/);
    expect(e.message).toMatch(/wrong shape \(1\): model\.layers\.0\.ffn\.lowrank\.up\.weight is \[8, 32\], expected \[32, 8\]/);
    expect(e.message).toMatch(/non-float dtype \(1\): model\.norm\.bias is I32/);
  });

  it('a config whose flags disagree with the tensors: the missing ones are named', () => {
    const d = moaFolder();
    patchConfig(d, { metric: 'l2', use_balls: false });
    const e = planError(d);
    expect(e.message).toMatch(/unknown tensors \(6\): .*model\.layers\.0\.mha\.maha_raw/);
    expect(e.message).toMatch(/model\.layers\.0\.mqa\.ball_radius_raw/);
  });

  it('unknown model_type, bad config values, missing config.json / tokenizer.json / weights', () => {
    const d = moaFolder();
    patchConfig(d, { model_type: 'llama' });
    expect(planError(d).message).toMatch(/model_type "llama" is not one braid converts.*--arch moa\|chimera/);
    // --arch overrides the detection
    expect(() => planConversion({ input: d, output: path.join(dir, 'x.gguf'), arch: 'moa' })).not.toThrow();
    expect(planError(d, 'gpt2').message).toMatch(/--arch gpt2: must be one of moa, chimera/);

    const c = moaFolder();
    patchConfig(c, { metric: 'manhattan' });
    expect(planError(c).message).toMatch(/"metric" must be "l2", "cosine" or "maha_diag", got "manhattan"/);
    patchConfig(c, { metric: 'l2', dim: 30 });
    expect(planError(c).message).toMatch(/"dim" 30 is not a multiple of "attn_heads" 4/);

    const t = moaFolder();
    unlinkSync(path.join(t, 'tokenizer.json'));
    expect(planError(t).message).toMatch(/tokenizer\.json .*not found: .*tokenizer\.json/);
    const w = moaFolder();
    unlinkSync(path.join(w, 'model.safetensors'));
    expect(planError(w).message).toMatch(/no model\.safetensors and no model\.safetensors\.index\.json/);
    const m = moaFolder();
    unlinkSync(path.join(m, 'config.json'));
    expect(planError(m).message).toMatch(/config\.json not found/);
    expect(planError(path.join(dir, 'nope')).message).toMatch(/model folder not found/);
  });

  it('a tokenizer larger than the embedding, and token ids outside it, are refused', () => {
    const d = moaFolder();
    patchConfig(d, { vocab_size: 200 });
    editTensors(d, (ts) => ts.map((t) => (t.name === 'model.embed_tokens.weight' ? { ...t, shape: [200, 32], data: (t.data as Float32Array).slice(0, 200 * 32) } : t)));
    expect(planError(d).message).toMatch(/tokenizer\.json has 263 tokens, more than the model's vocab_size 200/);
    const e = moaFolder();
    patchConfig(e, { eos_token_id: 270 });
    expect(planError(e).message).toMatch(/"eos_token_id" 270 is not a token of tokenizer\.json/);
  });

  it('Chimera 5.1 configs braid cannot run are refused with the reason', () => {
    const d = path.join(dir, 'chimera');
    writeMoaHfFolder(d, { layers: 1 }); // tokenizer + some weights; the config decides first
    writeFileSync(
      path.join(d, 'config.json'),
      JSON.stringify({
        model_type: 'chimera51',
        hidden_size: 128,
        num_hidden_layers: 12,
        num_heads: 2,
        head_dim: 64,
        vocab_size: 288,
        intermediate_size: 300,
        backbone: { layer_pattern: 'GD XM GD TM GD XM GD SK' },
        quantization: { group_size: 64 },
      }),
    );
    const msg = planError(d).message;
    expect(msg).toMatch(/layers 3, 11 are titans_mac/);
    expect(msg).toMatch(/"looping\.enabled" is true/);
    expect(msg).toMatch(/"quantization\.group_size" 64/);
    // 300 rounds up to 512 as the reference does, which BT2 can hold: not an error.
    expect(msg).not.toMatch(/intermediate_size/);
  });
});

describe('braid convert (command line)', () => {
  function capture(): Io & { stdout: string; stderr: string } {
    const io = { stdout: '', stderr: '', out: (s: string) => void (io.stdout += s), err: (s: string) => void (io.stderr += s) };
    return io;
  }

  it('--help, argument errors (exit 2), an existing output without --force (exit 1), a bad folder (exit 1, nothing written)', async () => {
    let io = capture();
    expect(await main(['convert', '--help'], io)).toBe(0);
    expect(io.stdout).toMatch(/Usage: braid convert <hf-folder> <out\.gguf>/);
    io = capture();
    expect(await main(['--help'], io)).toBe(0);
    expect(io.stdout).toMatch(/braid convert <hf-dir> <out\.gguf>/);
    io = capture();
    expect(await main(['convert', 'only-one'], io)).toBe(2);
    expect(io.stderr).toMatch(/expected <hf-folder> <out\.gguf>, got 1/);
    io = capture();
    expect(await main(['convert', 'a', 'b', '--dtype', 'q8'], io)).toBe(2);
    expect(io.stderr).toMatch(/--dtype: 'q8' is not f32 or f16/);

    const d = moaFolder();
    const out = path.join(dir, 'cli.gguf');
    writeFileSync(out, 'keep me');
    io = capture();
    expect(await main(['convert', d, out], io)).toBe(1);
    expect(io.stderr).toMatch(/already exists; pass --force/);
    expect(readFileSync(out, 'utf8')).toBe('keep me');

    patchConfig(d, { model_type: 'bert' });
    io = capture();
    expect(await main(['convert', d, out, '--force'], io)).toBe(1);
    expect(io.stderr).toMatch(/^braid convert: config\.json: model_type "bert"/);
    expect(readFileSync(out, 'utf8')).toBe('keep me');
    expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('converts with --force, --name and --dtype f16', async () => {
    const d = moaFolder();
    const out = path.join(dir, 'cli-ok.gguf');
    writeFileSync(out, 'old');
    const io = capture();
    expect(await main(['convert', d, out, '--force', '--name', 'my-moa', '--dtype', 'f16'], io)).toBe(0);
    expect(io.stdout).toMatch(/model {7}my-moa \(moa, from /);
    expect(io.stdout).toMatch(/float matrices f16/);
    expect(existsSync(out)).toBe(true);
    expect(readFileSync(out).subarray(0, 4).toString()).toBe('GGUF');
  });
});
