/**
 * `braid convert`'s engine entry: a Hugging Face folder → a GGUF file,
 * dispatched on the architecture (hf-folder.ts). Everything is checked before
 * the first byte is written, and the write is atomic (temp file, fsync,
 * rename), so a failed conversion leaves no file behind.
 */
import { basename } from 'node:path';
import { writeGguf, type GgufWriteInput } from '../gguf/writer.ts';
import { chimeraGgufInput } from './chimera.ts';
import type { FloatMatrixDtype } from './gguf-tensor.ts';
import { detectArch, readHfFolder, type HfArch } from './hf-folder.ts';
import { moaGgufInput } from './moa.ts';

export interface ConvertRequest {
  /** The Hugging Face folder. */
  input: string;
  /** The GGUF to write. */
  output: string;
  dtype?: FloatMatrixDtype;
  /** general.name; default the folder's name. */
  name?: string;
  /** Overrides the architecture detection. */
  arch?: string;
}

export interface ConvertResult {
  arch: HfArch;
  tensors: number;
  name: string;
}

/** Reads and checks the folder and returns what would be written. */
export function planConversion(req: ConvertRequest): { arch: HfArch; input: GgufWriteInput; name: string } {
  const folder = readHfFolder(req.input);
  const arch = detectArch(folder.config, req.arch);
  const name = req.name ?? basename(req.input.replace(/\/+$/, ''));
  const opts = { dtype: req.dtype ?? 'f32', name };
  const input = arch === 'moa' ? moaGgufInput(folder, opts) : chimeraGgufInput(folder, opts);
  return { arch, input, name };
}

export async function convertHfFolder(req: ConvertRequest): Promise<ConvertResult> {
  const { arch, input, name } = planConversion(req);
  await writeGguf(req.output, input);
  return { arch, tensors: input.tensors.length, name };
}
