// The store thread's side (see sqlite-thread.ts): one SqliteStore, calls answered in arrival order.
import { parentPort } from 'node:worker_threads';
import { toWire, type Call, type Reply } from './sqlite-thread.js';
import { SqliteStore } from './sqlite.js';

const port = parentPort!;
let store: SqliteStore | null = null;
let queue: Promise<void> = Promise.resolve();

async function run(call: Call): Promise<unknown> {
  if (call.method === 'open') {
    store = new SqliteStore(...(call.args as ConstructorParameters<typeof SqliteStore>));
    return null;
  }
  if (!store) throw new Error('the SQLite store thread has no open store');
  if (call.method === 'close') return store.close();
  const method = store[call.method] as unknown as (...args: unknown[]) => Promise<unknown>;
  return method.apply(store, call.args);
}

/** Never rejects: a failed answer would stop the queue and every later call with it. */
async function answer(call: Call): Promise<void> {
  let reply: Reply;
  try {
    reply = { id: call.id, result: await run(call) };
  } catch (err) {
    reply = { id: call.id, error: toWire(err) };
  }
  try {
    port.postMessage(reply);
  } catch (err) {
    port.postMessage({ id: call.id, error: toWire(err) } satisfies Reply);
  }
}

port.on('message', (call: Call) => { queue = queue.then(() => answer(call)); });
