// Entry for Node (>= 18): the engine's bytes are read from the package folder; the default
// cache is the Java-compatible file cache under $APOLLO_CACHE_DIR or the engine's default
// root (/opt/data, as the Java client).
import { readFile, writeFile, rename, mkdir } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import init, * as engine from '../dist/apolloconf_wasm.js';
import { bindRuntime, fileCache } from './client.js';

// mkdir -p one level at a time: Node 20's `mkdir(p, { recursive: true })` never settles
// when a parent cannot be created although its own parent exists (e.g. below /proc).
async function mkdirs(p) {
  try {
    await mkdir(p);
    return;
  } catch (e) {
    if (e?.code === 'EEXIST') return;
    const parent = dirname(p);
    if (e?.code !== 'ENOENT' || parent === p) throw e;
  }
  await mkdirs(dirname(p));
  try {
    await mkdir(p);
  } catch (e) {
    if (e?.code !== 'EEXIST') throw e;
  }
}

const fs = {
  readFile: (p) => readFile(p),
  readFileSync: (p) => readFileSync(p),
  writeFile: (p, b) => writeFile(p, b),
  rename: (a, b) => rename(a, b),
  mkdir: (p) => mkdirs(p),
  isNotFound: (e) => e?.code === 'ENOENT',
};

const cacheRoot = (defaultRoot) => globalThis.process?.env?.APOLLO_CACHE_DIR || defaultRoot;

export const ApolloClient = bindRuntime({
  name: 'Node',
  async load() {
    const bytes = await readFile(new URL('../dist/apolloconf_wasm_bg.wasm', import.meta.url));
    await init({ module_or_path: bytes });
    return engine;
  },
  cacheRoot,
  fileCache: (root) => fileCache(root, fs),
  defaultCache: (defaultRoot) => fileCache(cacheRoot(defaultRoot), fs),
});
export { ApolloError, ErrorCode } from './client.js';
