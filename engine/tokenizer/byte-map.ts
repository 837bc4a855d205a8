/**
 * GPT-2's reversible byte ↔ unicode-character map. Byte-level BPE works on
 * strings of these characters so every byte sequence is representable and
 * vocabularies stay printable (space is "Ġ", newline "Ċ").
 */

function build(): { byteToChar: string[]; charToByte: Map<string, number> } {
  const printable: number[] = [];
  const add = (lo: number, hi: number) => {
    for (let b = lo; b <= hi; b++) printable.push(b);
  };
  add(0x21, 0x7e); // '!'..'~'
  add(0xa1, 0xac); // '¡'..'¬'
  add(0xae, 0xff); // '®'..'ÿ'
  const keep = new Set(printable);
  const byteToChar: string[] = new Array(256);
  let next = 256;
  for (let b = 0; b < 256; b++) {
    // Printable bytes stand for themselves; the rest move to U+0100 onwards.
    byteToChar[b] = String.fromCodePoint(keep.has(b) ? b : next++);
  }
  const charToByte = new Map(byteToChar.map((c, b) => [c, b]));
  return { byteToChar, charToByte };
}

const MAP = build();

/** byte (0..255) → its one-character stand-in. */
export const BYTE_TO_CHAR: readonly string[] = MAP.byteToChar;
/** Inverse of BYTE_TO_CHAR. */
export const CHAR_TO_BYTE: ReadonlyMap<string, number> = MAP.charToByte;

/** UTF-16 code unit → byte for the stand-in characters (all below U+0144), else -1. */
const UNIT_TO_BYTE = new Int16Array(0x144).fill(-1);
MAP.byteToChar.forEach((c, b) => (UNIT_TO_BYTE[c.charCodeAt(0)] = b));

const utf8 = new TextEncoder();

/** UTF-8 text → its byte-level string ("hi there" → "hiĠthere"). */
export function textToByteLevel(text: string): string {
  let s = '';
  for (const b of utf8.encode(text)) s += BYTE_TO_CHAR[b]!;
  return s;
}

/**
 * Byte-level string → bytes. Characters outside the map (user-defined tokens
 * of foreign vocabularies) fall back to their own UTF-8.
 */
export function byteLevelToBytes(s: string): Uint8Array {
  const out: number[] = [];
  for (const ch of s) {
    const b = CHAR_TO_BYTE.get(ch);
    if (b !== undefined) out.push(b);
    else out.push(...utf8.encode(ch));
  }
  return Uint8Array.from(out);
}

/**
 * byteLevelToBytes written into out at `at`; returns the byte count (at most
 * 3 per UTF-16 unit). Lets a vocabulary keep all token bytes in one buffer.
 */
export function byteLevelInto(s: string, out: Uint8Array, at: number): number {
  // Fast path for pure byte-level strings (all of a vocabulary's normal tokens):
  // a code-unit table instead of a Map lookup per character.
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    const b = c < UNIT_TO_BYTE.length ? UNIT_TO_BYTE[c]! : -1;
    if (b < 0) {
      const slow = byteLevelToBytes(s);
      out.set(slow, at);
      return slow.length;
    }
    out[at + i] = b;
  }
  return s.length;
}
