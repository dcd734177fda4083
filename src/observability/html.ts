// HTML escaping for the status page: every value we did not write ourselves goes through `esc`
// (text and attribute values alike, so `"` and `'` are escaped too). Five characters, no library.
const ENTITIES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function esc(value: unknown): string {
  return String(value ?? '').replace(/[&<>"']/g, (c) => ENTITIES[c]!);
}
