// Text about a problem as it may be shown outside the logs (/readyz, the status page): secrets
// scrubbed, and no identifiers — GUIDs (tenant, client, correlation and trace ids), credentials in
// URLs, Entra's trace/correlation/timestamp trailer — cut to a readable length. Logs keep the detail.
import { scrubSecrets } from './logger.js';

const GUID = /\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b/gi;
const ENTRA_TRAILER = /\s*(Trace ID|Correlation ID|Timestamp):.*$/gis;
/** Control characters (terminal escapes included) and lone surrogates: shown as U+FFFD. */
const UNPRINTABLE = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

/** Userinfo (`user:password@`) cut out of every URL-like part of a text before it is shown. */
export function withoutUserinfo(text: string): string {
  return text.replace(/(\/\/)[^\s/@]*@/g, '$1[REDACTED]@');
}

/** `keepIds`: object keys and dead-letter reasons on the status page (behind its token) keep their ids. */
export function publicText(text: string, max = 300, keepIds = false): string {
  let out = withoutUserinfo(scrubSecrets(String(text)))
    .replace(ENTRA_TRAILER, '')
    .replace(UNPRINTABLE, '\ufffd');
  if (!keepIds) out = out.replace(GUID, '[id]');
  if (out.length > max) out = `${out.slice(0, max - 1)}…`;
  return out;
}
