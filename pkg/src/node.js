// Entry for Node (>= 18): the engine's bytes are read from the package folder; requests go
// through `node:http` / `node:https` (Node's `fetch` would load undici, ~12 MiB of memory);
// the default cache is the Java-compatible file cache under $APOLLO_CACHE_DIR or the
// engine's default root (/opt/data, as the Java client).
import { readFile, writeFile, rename, mkdir, open } from 'node:fs/promises';
import { openSync, fstatSync, readSync, closeSync, constants } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { dirname } from 'node:path';
import * as engine from '../dist/apolloconf_wasm.js';
import { bindRuntime, fileCache, untrusted, describe, MAX_BODY } from './client.js';

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

// Cache files are opened without following a symbolic link (O_NOFOLLOW) and checked on the
// opened file itself, so nothing can be swapped in between the check and the read.
const READ_FLAGS = constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0) | (constants.O_NONBLOCK ?? 0);
const myUid = () => (typeof process.getuid === 'function' ? process.getuid() : null);
const facts = (st) => ({
  isSymlink: false,
  isFile: st.isFile(),
  uid: typeof st.uid === 'number' && process.platform !== 'win32' ? st.uid : null,
  mode: process.platform === 'win32' ? null : st.mode,
  size: st.size,
});
function refused(path, why) {
  return new Error(`${path}: not read: ${why}`);
}
function openError(path, e) {
  // O_NOFOLLOW on a symbolic link fails with ELOOP (EMLINK on some BSDs).
  if (e?.code === 'ELOOP' || e?.code === 'EMLINK') return refused(path, 'it is a symbolic link');
  return e;
}

const fs = {
  async readChecked(p) {
    let h;
    try {
      h = await open(p, READ_FLAGS);
    } catch (e) {
      throw openError(p, e);
    }
    try {
      const st = await h.stat();
      const why = untrusted(facts(st), myUid());
      if (why) throw refused(p, why);
      const size = st.size;
      const buf = Buffer.alloc(size);
      let off = 0;
      while (off < size) {
        const { bytesRead } = await h.read(buf, off, size - off, off);
        if (!bytesRead) break;
        off += bytesRead;
      }
      return buf.subarray(0, off);
    } finally {
      await h.close();
    }
  },
  readCheckedSync(p) {
    let fd;
    try {
      fd = openSync(p, READ_FLAGS);
    } catch (e) {
      throw openError(p, e);
    }
    try {
      const st = fstatSync(fd);
      const why = untrusted(facts(st), myUid());
      if (why) throw refused(p, why);
      const buf = Buffer.alloc(st.size);
      let off = 0;
      while (off < st.size) {
        const n = readSync(fd, buf, off, st.size - off, off);
        if (!n) break;
        off += n;
      }
      return buf.subarray(0, off);
    } finally {
      closeSync(fd);
    }
  },
  writeNew: (p, b) => writeFile(p, b, { flag: 'wx', mode: 0o644 }),
  rename: (a, b) => rename(a, b),
  mkdir: (p) => mkdirs(p),
  randomHex: () => randomBytes(12).toString('hex'),
  isNotFound: (e) => e?.code === 'ENOENT',
};

const cacheRoot = (defaultRoot) => globalThis.process?.env?.APOLLO_CACHE_DIR || defaultRoot;

// Compiled from bytes and instantiated with initSync: the glue's async init would touch
// `Request`/`Response`, which makes Node load undici.
async function instantiate(glue, file) {
  const module = await WebAssembly.compile(await readFile(new URL(file, import.meta.url)));
  glue.initSync({ module });
  return glue;
}

// ------------------------------------------------------------------ transport

// One keep-alive agent per protocol (idle sockets do not keep the process alive).
const agents = {};
async function agentFor(url) {
  const tls = url.startsWith('https:');
  const key = tls ? 'https' : 'http';
  if (!agents[key]) {
    const mod = tls ? await import('node:https') : await import('node:http');
    agents[key] = { mod, agent: new mod.Agent({ keepAlive: true }) };
  }
  return agents[key];
}

const TLS_CODES = new Set(['CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID', 'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'CERT_UNTRUSTED', 'CERT_REVOKED', 'EPROTO']);
const isTls = (e) => typeof e?.code === 'string' && (TLS_CODES.has(e.code) || e.code.startsWith('ERR_TLS_') || e.code.startsWith('ERR_SSL_'));

/** The transport over `node:http`: the contract of `fetchTransport` in client.js. */
function httpTransport(url, headers, timeoutMs, done) {
  let live = true;
  let timedOut = false;
  let req;
  const finish = (kind, message, status, body) => {
    clearTimeout(timer);
    if (!live) return;
    live = false;
    if (kind && timedOut) done('timeout', `no answer within ${timeoutMs} ms`);
    else done(kind, message, status, body);
  };
  const timer = setTimeout(() => {
    timedOut = true;
    if (req) req.destroy(new Error('timed out'));
    else finish('timeout');
  }, timeoutMs);
  const head = {};
  for (let i = 0; i + 1 < headers.length; i += 2) head[headers[i]] = headers[i + 1];
  const send = async (retry) => {
    const { mod, agent } = await agentFor(url);
    if (!live) return;
    try {
      req = mod.request(url, { method: 'GET', headers: head, agent });
    } catch (e) {
      finish('other', describe(e));
      return;
    }
    let answered = false;
    req.on('error', (e) => {
      if (answered) return; // the response's own events report it
      // A kept-alive socket the server closed meanwhile: GET again, once, on a new one.
      if (retry && req.reusedSocket && (e?.code === 'ECONNRESET' || e?.code === 'EPIPE') && !timedOut && live) {
        send(false);
        return;
      }
      finish(isTls(e) ? 'tls' : 'connect', describe(e));
    });
    req.on('response', (res) => {
      answered = true;
      const chunks = [];
      let size = 0;
      res.on('data', (chunk) => {
        size += chunk.length;
        if (size > MAX_BODY) {
          finish('too-large', `body over ${MAX_BODY} bytes`);
          req.destroy();
          return;
        }
        chunks.push(chunk);
      });
      res.on('end', () => finish(null, null, res.statusCode, chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size)));
      res.on('error', (e) => finish('io', describe(e)));
      res.on('close', () => {
        if (!res.complete) finish('io', 'Error: the connection closed before the body ended');
      });
    });
    req.end();
  };
  send(true).catch((e) => finish('other', describe(e)));
  return () => {
    live = false;
    clearTimeout(timer);
    req?.destroy();
  };
}

export const ApolloClient = bindRuntime({
  name: 'Node',
  load: () => instantiate(engine, '../dist/apolloconf_wasm_bg.wasm'),
  async loadYaml() {
    const glue = await instantiate(await import('../dist/apolloconf_yaml.js'), '../dist/apolloconf_yaml_bg.wasm');
    return glue.flatten;
  },
  transport: httpTransport,
  cacheRoot,
  fileCache: (root) => fileCache(root, fs),
  defaultCache: (defaultRoot) => fileCache(cacheRoot(defaultRoot), fs),
});
export { ApolloError, ErrorCode } from './client.js';
