// Entry for Deno: the engine's bytes (and the YAML module's, when a YAML namespace is used)
// are read from the package folder (needs read access to it). The default cache is the Java-compatible file cache under $APOLLO_CACHE_DIR or the
// engine's default root (/opt/data) when read and write access to it is already granted
// (never prompts), else none.
import * as engine from '../dist/apolloconf_wasm.js';
import { bindRuntime, fileCache, untrusted } from './client.js';

// Deno cannot open without following a symbolic link, so a cache file is checked with
// lstat, opened, and checked again on the opened file: the same device and inode, or it
// was swapped in between and is not read.
const myUid = () => {
  try {
    return Deno.uid();
  } catch {
    return null;
  }
};
const facts = (st) => ({
  isSymlink: st.isSymlink,
  isFile: st.isFile,
  uid: st.uid ?? null,
  mode: st.mode ?? null,
  size: st.size,
});
function checked(path, link, opened) {
  const why = untrusted(facts(link), myUid()) ??
    (link.ino !== opened.ino || link.dev !== opened.dev ? 'it was replaced while being opened' : null);
  if (why) throw new Error(`${path}: not read: ${why}`);
  return opened.size;
}
function readAll(size, readSync) {
  const buf = new Uint8Array(size);
  let off = 0;
  while (off < size) {
    const n = readSync(buf.subarray(off));
    if (!n) break;
    off += n;
  }
  return buf.subarray(0, off);
}

const fs = {
  async readChecked(p) {
    const link = await Deno.lstat(p);
    const file = await Deno.open(p, { read: true });
    try {
      const size = checked(p, link, await file.stat());
      const buf = new Uint8Array(size);
      let off = 0;
      while (off < size) {
        const n = await file.read(buf.subarray(off));
        if (!n) break;
        off += n;
      }
      return buf.subarray(0, off);
    } finally {
      file.close();
    }
  },
  readCheckedSync(p) {
    const link = Deno.lstatSync(p);
    const file = Deno.openSync(p, { read: true });
    try {
      return readAll(checked(p, link, file.statSync()), (b) => file.readSync(b));
    } finally {
      file.close();
    }
  },
  writeNew: (p, b) => Deno.writeFile(p, b, { createNew: true, mode: 0o644 }),
  rename: (a, b) => Deno.rename(a, b),
  mkdir: (p) => Deno.mkdir(p, { recursive: true }),
  randomHex: () => Array.from(crypto.getRandomValues(new Uint8Array(12)), (x) => x.toString(16).padStart(2, '0')).join(''),
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
