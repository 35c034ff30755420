// Entry for workerd (Cloudflare Workers and compatible): the engine is imported as a
// compiled WebAssembly module (workers may not compile wasm from bytes) and instantiated on
// the first `create()`, never at import time. No cache by default; pass a
// `{ get(key), set(key, value) }` store (e.g. a KV namespace) to get one.
import * as engine from '../dist/apolloconf_wasm.js';
import wasmModule from '../dist/apolloconf_wasm_bg.wasm';
import { bindRuntime } from './client.js';

export const ApolloClient = bindRuntime({
  name: 'workerd',
  async load() {
    engine.initSync({ module: wasmModule });
    return engine;
  },
  defaultCache: () => null,
  // Workers keep no I/O alive between requests: no long poll; call refresh() per request.
  defaultMode: 'edge',
});
export { ApolloError, ErrorCode } from './client.js';
