// Optional audit log of the Sentinel upload calls (the Graph script's logs/ folder): one JSON line
// per request and response in `<dir>/sentinel-audit-YYYY-MM-DD.jsonl`. Failed calls and calls with
// rejected records carry `"outcome":"ERROR"`, so `grep '"ERROR"'` finds them. Authorization headers
// are never written, and every line goes through the logger's secret scrubber.
import { appendFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { scrubSecrets } from '../../observability/logger.js';

export interface AuditEntry {
  method: string;
  url: string;
  /** HTTP status, or 0 when no answer came. */
  status: number;
  durationMs: number;
  request: unknown;
  response: unknown;
  /** Transport error (no answer). */
  error?: string;
  /** Per-record errors inside a 200 answer. */
  recordErrors?: number;
}

export class AuditLog {
  private ready: Promise<unknown> | null = null;

  constructor(private readonly dir: string) {}

  async write(entry: AuditEntry, now = new Date()): Promise<void> {
    this.ready ??= mkdir(this.dir, { recursive: true });
    await this.ready;
    const failed = entry.status !== 200 || (entry.recordErrors ?? 0) > 0 || entry.error !== undefined;
    const line = { time: now.toISOString(), outcome: failed ? 'ERROR' : 'OK', ...entry };
    const file = join(this.dir, `sentinel-audit-${now.toISOString().slice(0, 10)}.jsonl`);
    await appendFile(file, `${scrubSecrets(JSON.stringify(line))}\n`, { mode: 0o640 });
  }
}
