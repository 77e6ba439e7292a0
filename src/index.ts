/**
 * kimg's public library API. Named exports only; each module's public surface is its own index.ts.
 * Modules in data-flow order: reference → platform → config → credentials → registry → pull → store (kimg's,
 * or containerd's) → manager → runtime (the composition root).
 */
export * from './errors/index.js';
export * from './clock/index.js';
export * from './oci/index.js';
export * from './reference/index.js';
export * from './platform/index.js';
export * from './config/index.js';
export * from './credentials/index.js';
export * from './registry/index.js';
export * from './store/index.js';
export * from './pull/index.js';
export * from './manager/index.js';
export * from './admission/index.js';
export * from './cri/index.js';
export * from './node/index.js';
export * from './runtime/index.js';
