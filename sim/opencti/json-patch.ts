// RFC 6902 diff with the output shape of fast-json-patch `compare()` (what the platform puts in
// `context.patch` / `context.reverse_patch`): deep, arrays addressed by index, removals walked
// from the last key so that array indices stay valid while the patch is applied.

export type PatchOp =
  | { op: 'add'; path: string; value: unknown }
  | { op: 'remove'; path: string }
  | { op: 'replace'; path: string; value: unknown };

type Container = Record<string, unknown> | unknown[];

const isContainer = (v: unknown): v is Container => typeof v === 'object' && v !== null;

export function escapePathComponent(key: string): string {
  return key.includes('/') || key.includes('~') ? key.replace(/~/g, '~0').replace(/\//g, '~1') : key;
}

const keysOf = (o: Container): string[] => (Array.isArray(o) ? o.map((_, i) => String(i)) : Object.keys(o));
const get = (o: Container, k: string): unknown => (o as Record<string, unknown>)[k];
const has = (o: Container, k: string): boolean => Object.prototype.hasOwnProperty.call(o, k);
const clone = (v: unknown): unknown => (v === undefined ? undefined : structuredClone(v));

function generate(before: Container, after: Container, patches: PatchOp[], path: string): void {
  if (before === after) return;
  const newKeys = keysOf(after);
  const oldKeys = keysOf(before);
  let deleted = false;
  for (let t = oldKeys.length - 1; t >= 0; t--) {
    const key = oldKeys[t] as string;
    const oldVal = get(before, key);
    const p = `${path}/${escapePathComponent(key)}`;
    if (has(after, key) && !(get(after, key) === undefined && oldVal !== undefined && !Array.isArray(after))) {
      const newVal = get(after, key);
      if (isContainer(oldVal) && isContainer(newVal) && Array.isArray(oldVal) === Array.isArray(newVal)) {
        generate(oldVal, newVal, patches, p);
      } else if (oldVal !== newVal) {
        patches.push({ op: 'replace', path: p, value: clone(newVal) });
      }
    } else if (Array.isArray(before) === Array.isArray(after)) {
      patches.push({ op: 'remove', path: p });
      deleted = true;
    } else {
      patches.push({ op: 'replace', path, value: clone(after) });
    }
  }
  if (!deleted && newKeys.length === oldKeys.length) return;
  for (const key of newKeys) {
    if (!has(before, key) && get(after, key) !== undefined) {
      patches.push({ op: 'add', path: `${path}/${escapePathComponent(key)}`, value: clone(get(after, key)) });
    }
  }
}

/** The operations turning `before` into `after`. */
export function comparePatch(before: object, after: object): PatchOp[] {
  const patches: PatchOp[] = [];
  generate(before as Container, after as Container, patches, '');
  return patches;
}

/** Apply a patch produced by comparePatch (enough of RFC 6902 to check a round trip). */
export function applyPatch<T>(doc: T, patch: readonly PatchOp[]): T {
  let root: unknown = structuredClone(doc);
  for (const op of patch) {
    const parts = op.path.split('/').slice(1).map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
    if (parts.length === 0) {
      if (op.op !== 'remove') root = clone(op.value);
      continue;
    }
    let parent = root as Container;
    for (const part of parts.slice(0, -1)) parent = get(parent, part) as Container;
    const last = parts[parts.length - 1] as string;
    if (Array.isArray(parent)) {
      const idx = last === '-' ? parent.length : Number(last);
      if (op.op === 'add') parent.splice(idx, 0, clone(op.value));
      else if (op.op === 'remove') parent.splice(idx, 1);
      else parent[idx] = clone(op.value);
    } else if (op.op === 'remove') {
      delete (parent as Record<string, unknown>)[last];
    } else {
      (parent as Record<string, unknown>)[last] = clone(op.value);
    }
  }
  return root as T;
}
