// Entry point of a fine-tuning worker thread (engine/finetune/train-worker.ts). Plain JS so Node
// runs it directly; the TypeScript loader is registered here because a worker does not inherit
// the loader the server registered (bin/braid.js), nor the test runner's transform.
import { register } from 'tsx/esm/api';

register();
const { runTrainWorker } = await import('./train-worker.ts');
await runTrainWorker();
