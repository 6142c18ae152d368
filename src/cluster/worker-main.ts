/** The entry point of a `start --workers N` worker process (forked by WorkerFleet). */
import { runWorker } from './worker.js';

runWorker();
