/**
 * oneOf needs exactly one branch to match, so the schema compiler accepts it
 * only for branches it can prove disjoint: different JSON types (integer
 * counts as number), disjoint const/enum values, or objects that both
 * require a property whose schemas are disjoint (the discriminated union).
 * Anything else is "maybe overlapping" — refused, never guessed.
 */
import { jsonType } from './json-value.ts';

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Follows local $refs (a bounded number of hops). */
function resolve(root: unknown, s: unknown): unknown {
  let cur = s;
  for (let hops = 0; hops < 16 && isObj(cur) && typeof cur.$ref === 'string'; hops++) {
    let target: unknown = root;
    const parts = cur.$ref === '#' ? [] : cur.$ref.replace(/^#\/?/, '').split('/');
    for (const p of parts) target = isObj(target) ? target[decodeURIComponent(p).replace(/~1/g, '/').replace(/~0/g, '~')] : undefined;
    cur = target;
  }
  return cur;
}

const values = (s: Record<string, unknown>): unknown[] | null => (s.const !== undefined ? [s.const] : Array.isArray(s.enum) ? s.enum : null);

function typesOf(s: Record<string, unknown>, v: unknown[] | null): Set<string> | null {
  const norm = (t: string) => (t === 'integer' ? 'number' : t);
  if (v !== null) return new Set(v.map(jsonType).map(norm));
  if (s.type === undefined) return null;
  return new Set((Array.isArray(s.type) ? s.type : [s.type]).map((t) => norm(String(t))));
}

export function provablyDisjoint(root: unknown, a0: unknown, b0: unknown, depth = 0): boolean {
  const a = resolve(root, a0);
  const b = resolve(root, b0);
  if (!isObj(a) || !isObj(b) || depth > 8) return false;
  const va = values(a);
  const vb = values(b);
  if (va !== null && vb !== null) return !va.some((x) => vb.some((y) => JSON.stringify(x) === JSON.stringify(y)));
  const ta = typesOf(a, va);
  const tb = typesOf(b, vb);
  if (ta !== null && tb !== null && ![...ta].some((t) => tb.has(t))) return true;
  if (isObj(a.properties) && isObj(b.properties) && Array.isArray(a.required) && Array.isArray(b.required)) {
    const pa = a.properties;
    const pb = b.properties;
    const rb = b.required as unknown[];
    for (const r of a.required) {
      if (typeof r !== 'string' || !rb.includes(r) || pa[r] === undefined || pb[r] === undefined) continue;
      if (provablyDisjoint(root, pa[r], pb[r], depth + 1)) return true;
    }
  }
  return false;
}
