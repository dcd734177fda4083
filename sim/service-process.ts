// Runs the built service as a child process (as in production: `node dist/src/cli.js run`), for the
// demo, end-to-end tests and benchmarks. Keeps its JSON log lines for assertions.
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', 'src', 'cli.js');

export interface LogLine {
  level?: string;
  msg?: string;
  [field: string]: unknown;
}

export class ServiceProcess {
  private child: ChildProcess | null = null;
  readonly lines: LogLine[] = [];
  readonly stderr: string[] = [];
  healthPort: number | null = null;
  exitCode: number | null = null;
  private exited: Promise<void> = Promise.resolve();

  constructor(private readonly env: NodeJS.ProcessEnv, private readonly echo = false) {}

  /** The child's process id (null before start). */
  get pid(): number | null {
    return this.child?.pid ?? null;
  }

  get running(): boolean {
    return this.child !== null && this.exitCode === null;
  }

  start(args: string[] = ['run']): void {
    this.exitCode = null;
    this.healthPort = null;
    const child = spawn(process.execPath, [CLI, ...args], { env: this.env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    let buffer = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      buffer += chunk.toString('utf8');
      let nl: number;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        const text = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        if (this.echo) process.stdout.write(`${text}\n`);
        try {
          const line = JSON.parse(text) as LogLine;
          this.lines.push(line);
          if (line.msg === 'health endpoints listening' && typeof line['port'] === 'number') this.healthPort = line['port'];
        } catch {
          this.lines.push({ msg: text });
        }
      }
    });
    child.stderr!.on('data', (chunk: Buffer) => {
      this.stderr.push(chunk.toString('utf8'));
      if (this.echo) process.stderr.write(chunk);
    });
    this.exited = new Promise((resolve) => child.on('exit', (code, signal) => {
      this.exitCode = code ?? (signal ? 128 : 0);
      resolve();
    }));
  }

  /** kill -9: no shutdown code runs. */
  async kill9(): Promise<void> {
    this.child?.kill('SIGKILL');
    await this.exited;
  }

  /** SIGTERM and wait for a clean exit. */
  async stop(): Promise<number | null> {
    if (!this.running) return this.exitCode;
    this.child!.kill('SIGTERM');
    await this.exited;
    return this.exitCode;
  }

  async waitForLog(predicate: (l: LogLine) => boolean, timeoutMs = 15_000): Promise<LogLine> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = this.lines.find(predicate);
      if (hit) return hit;
      if (this.exitCode !== null) throw new Error(`service exited (${this.exitCode}): ${this.stderr.join('').slice(-2000)}`);
      if (Date.now() > deadline) throw new Error('timed out waiting for a log line');
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async waitForExit(timeoutMs = 15_000): Promise<number | null> {
    await Promise.race([this.exited, new Promise((r) => setTimeout(r, timeoutMs))]);
    return this.exitCode;
  }
}

/** Poll until `check` returns a truthy value, or fail with `what`. */
export async function waitFor<T>(check: () => T | Promise<T>, what: string, timeoutMs = 20_000, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
