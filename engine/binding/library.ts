/**
 * Library-wide native settings: the thread pool, the instruction-set path and
 * the system description. Thin typed helpers over engine/binding/native.ts.
 */
import { Isa, native } from './native.ts';

export type IsaName = 'ref' | 'avx2' | 'avx512';

const ISA_NAMES: Record<number, IsaName> = { [Isa.REF]: 'ref', [Isa.AVX2]: 'avx2', [Isa.AVX512]: 'avx512' };
const ISA_IDS: Record<IsaName, number> = { ref: Isa.REF, avx2: Isa.AVX2, avx512: Isa.AVX512 };

/**
 * Starts (or resizes) the C thread pool. threads <= 0 or undefined lets the
 * library choose (BRAID_THREADS, else the cores this process may use).
 * Returns the thread count in effect.
 */
export function initLibrary(threads?: number): number {
  const n = native();
  n.init(threads ?? 0);
  return n.threadCount();
}

export function threadCount(): number {
  return native().threadCount();
}

export function activeIsa(): IsaName {
  const id = native().isaGet();
  const name = ISA_NAMES[id];
  if (name === undefined) throw new Error(`libbraid reports an unknown ISA id ${id}`);
  return name;
}

/** Forces an instruction-set path (tests compare against 'ref'); only while nothing evaluates. */
export function setIsa(name: IsaName): void {
  native().isaSet(ISA_IDS[name]);
}

export interface SystemInfo {
  version: string;
  isa: string;
  isa_available: string[];
  threads: number;
  cpu: string;
  [key: string]: unknown;
}

/** braid_system_info() parsed, plus the library path it came from. */
export function systemInfo(): SystemInfo & { library: string } {
  const n = native();
  const info = JSON.parse(n.systemInfo()) as SystemInfo;
  return { ...info, library: n.path };
}
