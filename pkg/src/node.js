// Entry for Node (>= 18): the engine's bytes are read from the package folder; the default
// cache is the Java-compatible file cache under $APOLLO_CACHE_DIR or /opt/data.
import { readFile, writeFile, rename, mkdir } from 'node:fs/promises';
import init, { WasmClient } from '../dist/apolloconf_wasm.js';
import { bindRuntime, fileCache } from './client.js';

const fs = {
  readFile: (p) => readFile(p),
  writeFile: (p, b) => writeFile(p, b),
  rename: (a, b) => rename(a, b),
  mkdir: (p) => mkdir(p, { recursive: true }),
  isNotFound: (e) => e?.code === 'ENOENT',
};

const cacheRoot = () => globalThis.process?.env?.APOLLO_CACHE_DIR || '/opt/data';

export const ApolloClient = bindRuntime({
  name: 'Node',
  async load() {
    const bytes = await readFile(new URL('../dist/apolloconf_wasm_bg.wasm', import.meta.url));
    await init({ module_or_path: bytes });
    return { WasmClient };
  },
  cacheRoot,
  fileCache: (root, appId) => fileCache(root, appId, fs),
  defaultCache: (appId) => fileCache(cacheRoot(), appId, fs),
});
export { ApolloError, ErrorCode } from './client.js';
