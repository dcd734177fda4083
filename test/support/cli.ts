// Runs the built CLI against a lab's environment and returns its standard output.
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Lab } from '../../sim/lab.js';

export function runCli(lab: Lab, args: string[], env: Record<string, string> = {}): Promise<string> {
  const cli = fileURLToPath(new URL('../../src/cli.js', import.meta.url));
  return new Promise((resolve, reject) =>
    execFile(process.execPath, [cli, ...args], { env: lab.env(env) }, (err, stdout, stderr) => (err ? reject(new Error(stderr || err.message)) : resolve(stdout))));
}
