// Terminal output of the CLI: text from the store or from a remote system (ids, keys, reasons) is
// hostile, so control characters are escaped before they reach a terminal (an escape sequence in a
// dead letter's key could otherwise rewrite or hide the lines around it).

/** C0 and C1 controls, DEL, and bidirectional overrides/isolates (they reorder what is shown). */
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;
/** In JSON text: what JSON.stringify leaves raw (its own newlines and indentation are structure). */
const JSON_UNSAFE = /[\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

const hex = (c: string) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;

/** One field for one line: every control character escaped, newlines included. */
export function safe(value: unknown): string {
  return String(value).replace(UNSAFE, hex).replace(LONE_SURROGATE, hex);
}

/** A multi-line text block (a tab-separated listing): the same, but its newlines and tabs kept. */
export function safeBlock(text: string): string {
  return text.split('\n').map((line) => line.split('\t').map(safe).join('\t')).join('\n');
}

/**
 * JSON for machines: JSON.stringify already escapes C0 controls and lone surrogates; C1 controls
 * (a terminal reads U+009B as CSI), DEL and bidi marks are escaped too, which keeps it valid JSON.
 */
export function safeJson(value: unknown): string {
  return JSON.stringify(value, null, 2).replace(JSON_UNSAFE, hex);
}

/** A plain text table, columns padded to the widest cell. */
export function table(header: string[], rows: unknown[][]): string {
  const cells = [header, ...rows.map((r) => r.map((c) => (c === null || c === undefined ? '-' : safe(c))))];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  return cells.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd()).join('\n');
}

/** Milliseconds as a short age: 45s, 12m, 3h, 2d. */
export function age(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  if (s < 172_800) return `${Math.round(s / 3600)}h`;
  return `${Math.round(s / 86_400)}d`;
}
