// The real store thread, except that a ping ends it the way a crash would (tests of a worker lost mid-run).
import { parentPort } from 'node:worker_threads';
import '../../src/store/sqlite-thread-worker.js';

// Runs after the real listener has queued the ping, before it is answered.
parentPort!.on('message', (call: { method: string }) => { if (call.method === 'ping') process.exit(3); });
