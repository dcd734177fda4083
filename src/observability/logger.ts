// pino, JSON by default. Secrets are removed twice: by path (structured fields) and by value
// (any known secret or bearer token that slipped into a message is scrubbed from the final line).
import pino, { type DestinationStream, type Logger } from 'pino';

export type { Logger } from 'pino';

const REDACT_PATHS = [
  'token', '*.token', 'client_secret', '*.client_secret', 'secret', '*.secret', 'password', '*.password',
  'authorization', '*.authorization', 'Authorization', '*.Authorization', 'headers.authorization',
  '*.headers.authorization', '*.headers.Authorization', 'access_token', '*.access_token', 'api_key', '*.api_key',
];

const knownSecrets = new Set<string>();

/** Register a secret value (token, client secret, password) so it never reaches a log line. */
export function registerSecret(value: string | undefined): void {
  if (value && value.length >= 4) knownSecrets.add(value);
}

/** Remove registered secrets and bearer tokens from any text (logs, errors, CLI output). */
export function scrubSecrets(text: string): string {
  let out = text.replace(/(Bearer\s+)[A-Za-z0-9._~+/=-]{8,}/gi, '$1[REDACTED]');
  for (const secret of knownSecrets) {
    if (out.includes(secret)) out = out.split(secret).join('[REDACTED]');
    const encoded = JSON.stringify(secret).slice(1, -1);
    if (encoded !== secret && out.includes(encoded)) out = out.split(encoded).join('[REDACTED]');
  }
  return out;
}

export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'threatbridge' },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: REDACT_PATHS, censor: '[REDACTED]' },
      formatters: { level: (label) => ({ level: label }) },
      hooks: { streamWrite: scrubSecrets },
    },
    destination ?? pino.destination({ dest: 1, sync: false }),
  );
}

/** Serialise an error for a log line: stable code, message, cause chain; no request config (it holds headers). */
export function errorFields(err: unknown): Record<string, unknown> {
  if (!(err instanceof Error)) return { error: String(err) };
  const out: Record<string, unknown> = { error: err.message, errorName: err.name };
  const e = err as Error & { code?: unknown; status?: unknown; cause?: unknown; detail?: unknown };
  if (e.code !== undefined) out['code'] = e.code;
  // What the public message leaves out (identifiers, a system's own words): logs only.
  if (typeof e.detail === 'string') out['detail'] = e.detail;
  if (e.status !== undefined) out['status'] = e.status;
  if (e.cause instanceof Error) out['cause'] = e.cause.message;
  return out;
}
