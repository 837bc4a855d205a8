#!/usr/bin/env node
// Entry point for `braid` / `npm start`: plain JS so Node runs it directly;
// tsx is registered first so the TypeScript sources load without a build step.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../server/cli.ts');
process.exitCode = await main(process.argv.slice(2));
// A finished command must not hang on a handle some library forgot to unref.
setTimeout(() => process.exit(), 2000).unref();
