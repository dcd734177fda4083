// A logger whose lines are kept, parsed, for tests that count what the service says.
import { createLogger, type Logger } from '../../src/observability/logger.js';

export interface CapturedLine {
  level: string;
  msg: string;
  [field: string]: unknown;
}

export function capturingLogger(level: string): { log: Logger; lines: CapturedLine[] } {
  const lines: CapturedLine[] = [];
  const log = createLogger(level, { write: (s: string) => { for (const l of s.split('\n')) if (l.trim()) lines.push(JSON.parse(l) as CapturedLine); } });
  return { log, lines };
}
