// The status page: one server-rendered HTML document, read-only, refreshing itself. What an
// operator needs to see at a glance (issue 16): sources with lag and connection, sinks with their
// queue, oldest item, throttling and last error, open dead letters with reasons, breakers with the
// command that resumes them, and indicators held against the cap. Every value is escaped (`esc`)
// and every problem text made public (`publicText`) before it is written.
import { esc } from './html.js';
import { publicText } from './public-text.js';

export interface StatusModel {
  generatedAt: number;
  flows: string[];
  store: string;
  sources: {
    name: string;
    /** reader: this replica reads it; standby: another one does; null: not known. */
    role: 'reader' | 'standby' | null;
    connected: boolean | null;
    problem: string | null;
    downSince: number | null;
    lastEventAt: number | null;
    lagSeconds: number | null;
  }[];
  sinks: {
    name: string;
    pending: number;
    oldestSeconds: number;
    throttled: number;
    reachable: boolean | null;
    problem: string | null;
    downSince: number | null;
  }[];
  breakers: { source: string; trippedAt: number; reason: string }[];
  deadLetters: { bySink: { sink: string; count: number }[]; recent: { id: number; sink: string; op: string; key: string; reason: string; createdAt: number }[] };
  caps: { sink: string; held: number; max: number; budget: number }[];
}

/** 90 → "1 min 30 s"; null → "—". */
export function age(seconds: number | null): string {
  if (seconds === null || !Number.isFinite(seconds)) return '—';
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  if (s < 86_400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86_400)} d ${Math.floor((s % 86_400) / 3600)} h`;
}

const since = (now: number, at: number | null) => (at === null ? null : (now - at) / 1000);
const state = (ok: boolean | null, yes: string, no: string) =>
  ok === null ? '<span class="unknown">unknown</span>' : ok ? `<span class="ok">${yes}</span>` : `<span class="bad">${no}</span>`;
const problem = (text: string | null) => (text ? esc(publicText(text)) : '');

function table(id: string, head: string[], rows: string[][], empty: string): string {
  if (rows.length === 0) return `<p id="${id}" class="empty">${esc(empty)}</p>`;
  return `<table id="${id}"><thead><tr>${head.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead><tbody>${
    rows.map((r) => `<tr>${r.map((c) => `<td>${c}</td>`).join('')}</tr>`).join('')}</tbody></table>`;
}

export function renderStatus(m: StatusModel, refreshSeconds: number): string {
  const now = m.generatedAt;
  const sources = table('sources', ['Source', 'Role', 'Connected', 'Last event', 'Lag', 'Problem'], m.sources.map((s) => [
    esc(s.name),
    esc(s.role ?? '—'),
    `${state(s.connected, 'yes', 'no')}${s.downSince !== null ? ` for ${esc(age(since(now, s.downSince)))}` : ''}`,
    s.lastEventAt === null ? '—' : `${esc(age(since(now, s.lastEventAt)))} ago`,
    esc(age(s.lagSeconds)),
    problem(s.problem),
  ]), 'No source is configured.');
  const sinks = table('sinks', ['Sink', 'Queued', 'Oldest item', 'Throttled (429s)', 'Reachable', 'Last error'], m.sinks.map((s) => [
    esc(s.name),
    esc(s.pending),
    esc(s.pending > 0 ? age(s.oldestSeconds) : '—'),
    esc(s.throttled),
    `${state(s.reachable, 'yes', 'no')}${s.downSince !== null ? ` for ${esc(age(since(now, s.downSince)))}` : ''}`,
    problem(s.problem),
  ]), 'No sink is configured.');
  const breakers = table('breakers', ['Source', 'Open for', 'Why', 'Resume with'], m.breakers.map((b) => [
    esc(b.source),
    esc(age(since(now, b.trippedAt))),
    problem(b.reason),
    `<code>threatbridge resume ${esc(b.source)}</code>`,
  ]), 'No breaker is open: enforcing actions flow.');
  const totalDead = m.deadLetters.bySink.reduce((n, d) => n + d.count, 0);
  const deadCounts = m.deadLetters.bySink.map((d) => `${esc(d.sink)}: ${esc(d.count)}`).join(', ');
  const dead = table('dead-letters', ['Id', 'Where', 'Event / operation', 'Key', 'Reason', 'Age'], m.deadLetters.recent.map((d) => [
    esc(d.id), esc(d.sink), esc(publicText(d.op, 60)), `<code>${esc(publicText(d.key, 200, true))}</code>`, esc(publicText(d.reason, 300, true)), esc(age(since(now, d.createdAt))),
  ]), 'No open dead letter.');
  const caps = table('caps', ['Sink', 'Held for us', 'Budget (cap − headroom)', 'Cap', 'Used'], m.caps.map((c) => [
    esc(c.sink), esc(c.held.toLocaleString('en-US')), esc(c.budget.toLocaleString('en-US')), esc(c.max.toLocaleString('en-US')),
    `<span class="${c.held >= c.budget ? 'bad' : 'ok'}">${esc(Math.round((c.held / Math.max(1, c.max)) * 100))} %</span>`,
  ]), 'No capped sink is configured.');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="${esc(refreshSeconds)}">
<meta name="robots" content="noindex">
<title>ThreatBridge status</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f3f3f3}.ok{color:#176f2c}.bad{color:#b00020;font-weight:bold}.unknown{color:#777}.empty{color:#555}
code{background:#f6f6f6;padding:0 .2em;word-break:break-all}
</style></head>
<body>
<h1>ThreatBridge status</h1>
<p>Generated <time id="generated" datetime="${esc(new Date(now).toISOString())}">${esc(new Date(now).toISOString())}</time>;
refreshes every ${esc(refreshSeconds)} s. Flows: ${esc(m.flows.join(', ') || 'none')}. Store: ${esc(m.store)}. Read-only.</p>
<h2>Sources</h2>${sources}
<h2>Sinks</h2>${sinks}
<h2>Breakers</h2>${breakers}
<h2>Indicators held against the cap</h2>${caps}
<h2>Dead letters (${esc(totalDead)} open${deadCounts ? `: ${deadCounts}` : ''})</h2>
<p>Newest first. Read one with <code>threatbridge dead-letters --json</code>; after fixing the cause, <code>threatbridge replay &lt;id&gt;</code>.</p>
${dead}
</body></html>
`;
}
