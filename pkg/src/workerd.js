// Entry for workerd (Cloudflare Workers and compatible): the engine is imported as a
// compiled WebAssembly module (workers may not compile wasm from bytes) and instantiated on
// the first `create()`, never at import time. The YAML module is imported the same way
// (workers cannot load code later, so it is part of the worker), but instantiated only when
// a YAML namespace is configured or watched. No cache by default; pass a
// `{ get(key), set(key, value) }` store (e.g. a KV namespace) to get one.
import * as engine from '../dist/apolloconf_wasm.js';
import wasmModule from '../dist/apolloconf_wasm_bg.wasm';
import * as yaml from '../dist/apolloconf_yaml.js';
import yamlModule from '../dist/apolloconf_yaml_bg.wasm';
import { bindRuntime } from './client.js';

export const ApolloClient = bindRuntime({
  name: 'workerd',
  async load() {
    engine.initSync({ module: wasmModule });
    return engine;
  },
  async loadYaml() {
    yaml.initSync({ module: yamlModule });
    return yaml.flatten;
  },
  defaultCache: () => null,
  // Workers keep no I/O alive between requests: no long poll; call refresh() per request.
  defaultMode: 'edge',
});
export { ApolloError, ErrorCode } from './client.js';
