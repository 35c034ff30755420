// Entry for Deno: the engine's bytes (and the YAML module's, when a YAML namespace is used)
// are read from the package folder (needs read access to it). The default cache is the Java-compatible file cache under $APOLLO_CACHE_DIR or the
// engine's default root (/opt/data) when read and write access to it is already granted
// (never prompts), else none.
import * as engine from '../dist/apolloconf_wasm.js';
import { bindRuntime, fileCache } from './client.js';

const fs = {
  readFile: (p) => Deno.readFile(p),
  readFileSync: (p) => Deno.readFileSync(p),
  writeFile: (p, b) => Deno.writeFile(p, b),
  rename: (a, b) => Deno.rename(a, b),
  mkdir: (p) => Deno.mkdir(p, { recursive: true }),
  isNotFound: (e) => e instanceof Deno.errors.NotFound,
};

function cacheRoot(defaultRoot) {
  let dir;
  try {
    if (Deno.permissions.querySync({ name: 'env', variable: 'APOLLO_CACHE_DIR' }).state === 'granted') {
      dir = Deno.env.get('APOLLO_CACHE_DIR');
    }
  } catch {
    // no env access: use the default
  }
  return dir || defaultRoot;
}

function granted(path) {
  try {
    return Deno.permissions.querySync({ name: 'read', path }).state === 'granted' &&
      Deno.permissions.querySync({ name: 'write', path }).state === 'granted';
  } catch {
    return false;
  }
}

async function instantiate(glue, file) {
  const module = await WebAssembly.compile(await Deno.readFile(new URL(file, import.meta.url)));
  glue.initSync({ module });
  return glue;
}

export const ApolloClient = bindRuntime({
  name: 'Deno',
  load: () => instantiate(engine, '../dist/apolloconf_wasm_bg.wasm'),
  async loadYaml() {
    const glue = await instantiate(await import('../dist/apolloconf_yaml.js'), '../dist/apolloconf_yaml_bg.wasm');
    return glue.flatten;
  },
  cacheRoot,
  fileCache: (root) => fileCache(root, fs),
  defaultCache(defaultRoot) {
    const root = cacheRoot(defaultRoot);
    return granted(root) ? fileCache(root, fs) : null;
  },
});
export { ApolloError, ErrorCode } from './client.js';
