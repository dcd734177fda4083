// Raw input kept beside a dead letter, cut to `limits.raw_copy_bytes`: enough to see what was
// wrong, never a 50 MiB row. A cut copy says so and how big the input was.

/** The text itself when it fits, else its head and a note of the full length. */
export function cutText(text: string, maxBytes: number): string {
  if (text.length <= maxBytes / 3 || Buffer.byteLength(text) <= maxBytes) return text;
  const head = Buffer.from(text).subarray(0, maxBytes).toString('utf8').replace(/\uFFFD$/, '');
  return `${head}… [cut: ${Buffer.byteLength(text)} bytes]`;
}

/** A JSON value as it is when its JSON fits, else `{cut, bytes, head}` with the head of that JSON. */
export function cutJson(value: unknown, maxBytes: number): unknown {
  let json: string;
  try {
    json = JSON.stringify(value) ?? 'null';
  } catch {
    return { cut: true, bytes: null, head: 'not serialisable as JSON' };
  }
  if (Buffer.byteLength(json) <= maxBytes) return value;
  return { cut: true, bytes: Buffer.byteLength(json), head: cutText(json, maxBytes) };
}

/** What a claim row keeps of a source's text: no sink shows more (Sentinel: 256 title, 4,000 description characters). */
export const CLAIM_TEXT = { title: 256, description: 4000, labels: 50, label: 128 } as const;

export const clip = (text: string, max: number): string => (text.length <= max ? text : text.slice(0, max).toWellFormed());

/** Labels a claim keeps: the first CLAIM_TEXT.labels, each clipped. */
export const claimLabels = (labels: string[]): string[] => labels.slice(0, CLAIM_TEXT.labels).map((l) => clip(l, CLAIM_TEXT.label));
