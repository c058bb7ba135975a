/**
 * Entry point of a worker process, forked by the primary (pool.ts) with node:cluster. Like cli.ts,
 * an entry point, and so allowed to end the process: it hands its exit to the worker.
 */
import { runWorker } from './worker.js';

runWorker((code) => process.exit(code));
