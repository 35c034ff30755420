// The runtime-independent part of the package: options, the JS-side snapshot, events,
// errors and cache adapters. The protocol itself runs in the wasm engine; each entry point
// (node.js, deno.js, browser.js, workerd.js) binds it to a way of loading that engine.

/** Error codes of {@link ApolloError}. */
export const ErrorCode = Object.freeze({
  NOT_FOUND: 'NOT_FOUND',
  UNAUTHORIZED: 'UNAUTHORIZED',
  TIMEOUT: 'TIMEOUT',
  NETWORK: 'NETWORK',
  BAD_RESPONSE: 'BAD_RESPONSE',
  CLOSED: 'CLOSED',
  CACHE: 'CACHE',
});

/** An error of the client, with a machine-readable `code`. */
export class ApolloError extends Error {
  constructor(code, message, details = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = 'ApolloError';
    this.code = code;
    this.namespace = details.namespace;
    this.status = details.status;
    this.url = details.url;
    this.request = details.request;
  }
}

const OPTION_NAMES = new Set([
  'appId', 'metaServer', 'configServer', 'cluster', 'dataCenter', 'namespaces', 'label', 'ip',
  'secret', 'cache', 'startupTimeoutMs', 'requireValues', 'listeners', 'signal', 'timing', 'mode',
]);

function bad(name, what) {
  return new TypeError(`apolloconf: option \`${name}\` ${what}`);
}

function optString(o, name) {
  const v = o[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw bad(name, `must be a string, got ${typeof v}`);
  return v;
}

// The URLs themselves are judged by the engine.
function serverList(o, name) {
  const v = o[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'string') return v;
  if (!Array.isArray(v) || v.some((s) => typeof s !== 'string')) {
    throw bad(name, 'must be a URL string, a comma-separated list or an array of URLs');
  }
  return v.join(',');
}

/**
 * Checks the options' types and splits them into the engine's options and the JS-side
 * settings. Their values (URLs, names, timing knobs) are judged by the engine, which
 * `create()` turns into the same kind of `TypeError`.
 */
export function checkOptions(options, defaultMode = 'background') {
  if (options === null || typeof options !== 'object') {
    throw new TypeError('apolloconf: ApolloClient.create() needs an options object');
  }
  for (const k of Object.keys(options)) {
    if (!OPTION_NAMES.has(k)) throw new TypeError(`apolloconf: unknown option \`${k}\``);
  }
  const appId = options.appId;
  if (typeof appId !== 'string') throw bad('appId', 'must be a non-empty string');
  let namespaces = options.namespaces ?? undefined;
  if (typeof namespaces === 'string') namespaces = [namespaces];
  if (namespaces !== undefined && (!Array.isArray(namespaces) || namespaces.length === 0 ||
      namespaces.some((n) => typeof n !== 'string'))) {
    throw bad('namespaces', 'must be a non-empty array of namespace names');
  }
  const startupTimeoutMs = options.startupTimeoutMs ?? 30_000;
  if (typeof startupTimeoutMs !== 'number' || !(startupTimeoutMs >= 0)) {
    throw bad('startupTimeoutMs', 'must be a number of milliseconds >= 0');
  }
  const requireValues = options.requireValues ?? true;
  if (typeof requireValues !== 'boolean') throw bad('requireValues', 'must be a boolean');
  const listeners = options.listeners ?? {};
  if (listeners === null || typeof listeners !== 'object') throw bad('listeners', 'must be an object');
  for (const [k, fn] of Object.entries(listeners)) {
    if (k !== 'change' && k !== 'error') throw bad('listeners', `has an unknown field \`${k}\` (use change or error)`);
    if (typeof fn !== 'function') throw bad(`listeners.${k}`, 'must be a function');
  }
  const signal = options.signal;
  if (signal !== undefined && (signal === null || typeof signal.aborted !== 'boolean' ||
      typeof signal.addEventListener !== 'function')) {
    throw bad('signal', 'must be an AbortSignal');
  }
  const timing = {};
  if (options.timing !== undefined) {
    if (options.timing === null || typeof options.timing !== 'object') throw bad('timing', 'must be an object');
    for (const [k, v] of Object.entries(options.timing)) {
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw bad(`timing.${k}`, 'must be an integer >= 0');
      timing[k] = v;
    }
  }
  const mode = options.mode ?? defaultMode;
  if (mode !== 'background' && mode !== 'edge') throw bad('mode', 'must be "background" or "edge"');
  const cache = options.cache;
  checkCache(cache);
  const engine = {
    appId,
    background: mode === 'background',
    metaServer: serverList(options, 'metaServer'),
    configServer: serverList(options, 'configServer'),
    cluster: optString(options, 'cluster'),
    dataCenter: optString(options, 'dataCenter'),
    namespaces,
    label: optString(options, 'label'),
    ip: optString(options, 'ip'),
    secret: optString(options, 'secret'),
    timing,
  };
  return { engine, startupTimeoutMs, requireValues, listeners, signal, mode, cache };
}

// ------------------------------------------------------------------ cache adapters

const latin1 = (bytes) => {
  let s = '';
  for (let i = 0; i < bytes.length; i += 8192) s += String.fromCharCode.apply(null, bytes.subarray(i, i + 8192));
  return s;
};
const fromLatin1 = (s) => {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i) & 0xff;
  return out;
};

// A cache adapter reads and writes one namespace's file, named by the engine as
// `{ fileName, path }`: the file name (`{appId}+{cluster}+{namespace}.properties`, the key in
// a store) and its path below the cache root (`{appId}/config-cache/{fileName}`). Adapters
// that can also read synchronously (files, localStorage) have `readSync`: `watch()` uses it
// so that a namespace's cache serves before any answer of the server can arrive.

const fromStore = (v) => {
  if (v === undefined || v === null) return null;
  return typeof v === 'string' ? fromLatin1(v) : new Uint8Array(v);
};

/**
 * A cache over a `{ get(key), set(key, value) }` store, keyed by file name; values are
 * strings. `sync`: `get` returns the value itself, never a promise.
 */
export function storeCache(store, prefix = '', sync = false) {
  return {
    async read({ fileName }) {
      return fromStore(await store.get(prefix + fileName));
    },
    readSync: sync ? ({ fileName }) => fromStore(store.get(prefix + fileName)) : undefined,
    async write({ fileName }, bytes) {
      await store.set(prefix + fileName, latin1(bytes));
    },
  };
}

/** The browser's `localStorage`, keys prefixed with `apolloconf:`. */
export function localStorageCache() {
  const ls = globalThis.localStorage;
  if (!ls) return null;
  return storeCache({ get: (k) => ls.getItem(k), set: (k, v) => ls.setItem(k, v) }, 'apolloconf:', true);
}

/** The largest cache file read: three times the body limit (the file escapes non-ASCII). */
export const MAX_CACHE_FILE = 3 * 16 * 1024 * 1024;

/**
 * Why a cache file may not be trusted, or null: it must be a regular file (not a symbolic
 * link) of the user the process runs as (when the runtime tells), not writable by group or
 * others, and at most MAX_CACHE_FILE bytes. `st` has isFile / isSymlink / uid / mode / size.
 */
export function untrusted(st, uid) {
  if (st.isSymlink) return 'it is a symbolic link';
  if (!st.isFile) return 'it is not a regular file';
  if (uid !== null && st.uid !== null && st.uid !== uid) return `it belongs to uid ${st.uid}, not to uid ${uid}`;
  if (st.mode !== null && (st.mode & 0o022) !== 0) return 'group or others may write it';
  if (st.size > MAX_CACHE_FILE) return `it is larger than ${MAX_CACHE_FILE} bytes`;
  return null;
}

/**
 * The Java-compatible file cache: each file at `{root}/{path}` (the engine's layout), written
 * to a temporary file created exclusively under a random name (nothing planted at that name
 * is followed) and renamed into place. A file is read only when `untrusted` finds nothing
 * against it. `fs` supplies readChecked / readCheckedSync (bytes, or an Error saying why
 * not), writeNew (exclusive create, mode 0644), rename, mkdir, randomHex, isNotFound.
 */
export function fileCache(root, fs) {
  const base = root.replace(/[\\/]+$/, '');
  const made = new Map();
  const missing = (e) => {
    if (fs.isNotFound(e)) return null;
    throw e;
  };
  return {
    async read({ path }) {
      try {
        return await fs.readChecked(`${base}/${path}`);
      } catch (e) {
        return missing(e);
      }
    },
    readSync({ path }) {
      try {
        return fs.readCheckedSync(`${base}/${path}`);
      } catch (e) {
        return missing(e);
      }
    },
    async write({ fileName, path }, bytes) {
      const file = `${base}/${path}`;
      const dir = file.slice(0, file.lastIndexOf('/'));
      if (!made.has(dir)) made.set(dir, fs.mkdir(dir));
      await made.get(dir);
      const tmp = `${dir}/.${fileName}.${fs.randomHex()}.tmp`;
      await fs.writeNew(tmp, bytes);
      await fs.rename(tmp, file);
    },
  };
}

const CACHE_CHOICES = 'must be false, "file", { dir }, "localStorage" or a { get(key), set(key, value) } store';

function checkCache(choice) {
  if (choice === undefined || choice === false || choice === null || choice === 'none' ||
      choice === 'localStorage' || choice === 'file') return;
  if (typeof choice === 'object' && (typeof choice.dir === 'string' ||
      (typeof choice.get === 'function' && typeof choice.set === 'function'))) return;
  throw bad('cache', CACHE_CHOICES);
}

/** The cache adapter for a checked `cache` option; `defaultRoot` is the engine's default root. */
function resolveCache(choice, runtime, defaultRoot) {
  if (choice === undefined) return runtime.defaultCache(defaultRoot);
  if (choice === false || choice === null || choice === 'none') return null;
  if (choice === 'localStorage') {
    const c = localStorageCache();
    if (!c) throw bad('cache', '"localStorage" is not available in this runtime');
    return c;
  }
  if (choice === 'file' || typeof choice.dir === 'string') {
    if (!runtime.fileCache) throw bad('cache', `a file cache is not available in ${runtime.name}`);
    return runtime.fileCache(choice === 'file' ? runtime.cacheRoot(defaultRoot) : choice.dir);
  }
  return storeCache(choice);
}

// ------------------------------------------------------------------ transports

// A transport performs the engine's requests: `transport(url, headers, timeoutMs, done)`
// with `headers` as [name, value, name, value, ...]; it calls `done(null, null, status, body)`
// with the whole body, or `done(kind, message)` when there is no HTTP answer (`kind`:
// connect, timeout, io, too-large, tls, redirect, other), always asynchronously and at
// most once; it returns a function that aborts the request (`done` is then not called).
// Redirects are never followed (the access-key headers must not travel elsewhere); a body
// over 16 MiB is given up as soon as it passes the limit, as every apolloconf client does.

export const MAX_BODY = 16 * 1024 * 1024;

/** An error as text: `Name: message (cause)`. */
export function describe(e) {
  if (e instanceof Error) {
    const c = e.cause;
    return c === undefined || c === null ? `${e.name}: ${e.message}` : `${e.name}: ${e.message} (${describe(c)})`;
  }
  return typeof e === 'string' ? e : 'unknown error';
}

const timeoutMessage = (ms) => `no answer within ${ms} ms`;

function concat(chunks, size) {
  if (chunks.length === 1) return chunks[0];
  const out = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/** The transport over `fetch` (Deno, browsers, workers): streamed body, `AbortController`. */
export function fetchTransport(fetchFn = (url, init) => globalThis.fetch(url, init)) {
  return (url, headers, timeoutMs, done) => {
    const ctrl = new AbortController();
    let timedOut = false;
    let live = true;
    const timer = setTimeout(() => {
      timedOut = true;
      ctrl.abort();
    }, timeoutMs);
    const finish = (kind, message, status, body) => {
      clearTimeout(timer);
      if (!live) return;
      live = false;
      if (kind && timedOut) done('timeout', timeoutMessage(timeoutMs));
      else done(kind, message, status, body);
    };
    (async () => {
      let pending;
      try {
        pending = fetchFn(url, { method: 'GET', redirect: 'manual', headers: pairs(headers), signal: ctrl.signal });
      } catch (e) {
        await null; // answered asynchronously, like every answer
        throw ['other', describe(e)];
      }
      let res;
      try {
        res = await pending;
      } catch (e) {
        throw ['connect', describe(e)];
      }
      if (res === null || typeof res !== 'object') throw ['other', 'fetch returned no Response'];
      if (res.type === 'opaqueredirect') {
        ctrl.abort();
        throw ['redirect', 'a redirect (not followed; this runtime hides its status)'];
      }
      const status = res.status;
      if (!res.body) return [status, new Uint8Array(0)];
      const chunks = [];
      let size = 0;
      try {
        const reader = res.body.getReader();
        for (;;) {
          const { done: end, value } = await reader.read();
          if (end) break;
          if (!value) continue;
          if (size + value.length > MAX_BODY) {
            reader.cancel().catch(() => {});
            ctrl.abort();
            return ['too-large', `body over ${MAX_BODY} bytes`];
          }
          chunks.push(value);
          size += value.length;
        }
      } catch (e) {
        throw ['io', describe(e)];
      }
      return [status, concat(chunks, size)];
    })().then(
      ([a, b]) => (typeof a === 'string' ? finish(a, b) : finish(null, null, a, b)),
      (e) => (Array.isArray(e) ? finish(e[0], e[1]) : finish('other', describe(e))),
    );
    return () => {
      live = false;
      clearTimeout(timer);
      ctrl.abort();
    };
  };
}

function pairs(flat) {
  const out = [];
  for (let i = 0; i + 1 < flat.length; i += 2) out.push([flat[i], flat[i + 1]]);
  return out;
}

// ------------------------------------------------------------------ reads

function asNumber(v, def) {
  if (v === undefined) return def;
  const t = v.trim();
  if (t === '') return def;
  const n = Number(t);
  return Number.isNaN(n) ? def : n;
}

function asBoolean(v, def) {
  if (v === undefined) return def;
  const t = v.trim().toLowerCase();
  if (t === 'true') return true;
  if (t === 'false') return false;
  return def;
}

function asJSON(v, def) {
  if (v === undefined) return def;
  try {
    return JSON.parse(v);
  } catch {
    return def;
  }
}

/** Reads of one namespace, over the client's JS-side snapshot. */
class NamespaceView {
  #client;
  #name;
  constructor(client, name) {
    this.#client = client;
    this.#name = name;
  }
  #data() {
    return this.#client._snapshot(this.#name);
  }
  get name() { return this.#name; }
  get releaseKey() { return this.#data().releaseKey ?? undefined; }
  get source() { return this.#data().source; }
  get status() { return this.#data().status; }
  get content() { return this.#data().content ?? undefined; }
  get(key, defaultValue) {
    const v = this.#data().map.get(key);
    return v === undefined ? defaultValue : v;
  }
  getNumber(key, defaultValue) { return asNumber(this.#data().map.get(key), defaultValue); }
  getBoolean(key, defaultValue) { return asBoolean(this.#data().map.get(key), defaultValue); }
  getJSON(key, defaultValue) { return asJSON(this.#data().map.get(key), defaultValue); }
  has(key) { return this.#data().map.has(key); }
  keys() { return [...this.#data().map.keys()]; }
  toObject() { return Object.fromEntries(this.#data().map); }
}

const EMPTY = Object.freeze({ map: new Map(), content: undefined, releaseKey: undefined, source: 'none', status: 'loading' });

const newSnapshot = () => ({ map: new Map(), content: undefined, releaseKey: undefined, source: 'none', status: 'loading' });

/** A listener's interest as the engine's JSON (the engine decides what matches). */
function interest(opts) {
  if (opts === undefined || opts === null) return '{}';
  if (typeof opts !== 'object') throw new TypeError('apolloconf: listener options must be an object');
  const keys = opts.keys ?? [];
  const prefixes = opts.prefixes ?? [];
  if (!Array.isArray(keys) || !Array.isArray(prefixes) || keys.some((k) => typeof k !== 'string') ||
      prefixes.some((p) => typeof p !== 'string')) {
    throw new TypeError('apolloconf: `keys` and `prefixes` must be arrays of strings');
  }
  const namespace = opts.namespace ?? undefined;
  if (namespace !== undefined && typeof namespace !== 'string') {
    throw new TypeError('apolloconf: `namespace` must be a string');
  }
  return JSON.stringify({ keys, prefixes, namespace });
}

function errorFrom(e) {
  return new ApolloError(e.code, e.message, e);
}

const asyncDispose = Symbol.asyncDispose ?? Symbol.for('Symbol.asyncDispose');

/** The client. Create it with `await ApolloClient.create(options)`. */
export class ApolloClient {
  // The engine (null once closed and freed) and the JS-side mirror of its namespaces,
  // kept current by one message per drain of the engine (`#onDrain`).
  #engine = null;
  #cache = null;
  #names = [];
  #snapshots = new Map();
  #merged = new Map();
  #views = new Map();
  // Change listeners and async iterators by id; the engine knows their interests.
  #subs = new Map();
  #nextSub = 1;
  #errorListeners = new Set();
  #closed = false;
  #closing = null;
  #onClosed = null;
  #ready = null;
  #lastError = null;
  #writes = Promise.resolve();
  #refreshWaiters = [];
  #mode = 'background';
  #finalMetrics = null;
  // I/O for the engine: the runtime's transport, the requests in flight (id -> abort) and
  // the one timer that stands for the engine's deadline.
  #transport = null;
  #inflight = new Map();
  #timer = undefined;
  // While the YAML module loads for a namespace watched later: a promise that settles
  // when it is there (answers for YAML namespaces wait for it), else null.
  #yamlWait = null;
  #runtime = null;

  /** Use `ApolloClient.create()`. */
  constructor(token) {
    if (token !== PRIVATE) throw new TypeError('apolloconf: use `await ApolloClient.create(options)`');
  }

  /** Creates a client and waits until every configured namespace has settled. */
  static async create(options) {
    void options;
    throw new Error('apolloconf: import the package through its entry point (`import { ApolloClient } from "apolloconf"`)');
  }

  /** @internal */
  static async _create(runtime, options) {
    const opts = checkOptions(options, runtime.defaultMode);
    if (opts.signal?.aborted) throw new ApolloError(ErrorCode.CLOSED, 'apolloconf: aborted before start', { cause: opts.signal.reason });
    const wasm = await runtime.load();
    const cache = resolveCache(opts.cache, runtime, wasm.defaultCacheRoot());
    const client = new this(PRIVATE);
    client.#cache = cache;
    client.#mode = opts.mode;
    client.#runtime = runtime;
    client.#transport = runtime.transport;
    for (const [type, fn] of Object.entries(opts.listeners)) client.on(type, fn);
    let engine;
    try {
      engine = new wasm.WasmClient(JSON.stringify({ ...opts.engine, persist: cache !== null }), (json, blobs) => client.#onDrain(json, blobs));
    } catch (e) {
      throw new TypeError(`apolloconf: ${e?.message ?? e}`);
    }
    // The YAML module, only when a YAML namespace is configured: before any of its values
    // (cache file or server) can reach the engine.
    if (engine.needsYaml()) {
      try {
        await runtime.yaml();
      } catch (e) {
        engine.free();
        throw new ApolloError(ErrorCode.NETWORK, `apolloconf: cannot load the YAML module: ${describe(e)}`, { cause: e });
      }
    }
    client.#engine = engine;
    for (const [id, sub] of client.#subs) engine.listen(id, sub.interest);
    // The namespaces reach the mirror with the first drain (`start()`).
    if (cache) {
      for (const ns of engine.namespaces()) await client.#restoreCache(ns);
    }
    const ready = new Promise((resolve) => { client.#ready = resolve; });
    engine.start();
    let timer;
    let onAbort;
    const outcome = await Promise.race([
      ready.then(() => 'ready'),
      new Promise((resolve) => {
        // Infinity waits forever; setTimeout itself would overflow to 1 ms past 2^31-1.
        if (Number.isFinite(opts.startupTimeoutMs)) timer = setTimeout(() => resolve('timeout'), Math.min(opts.startupTimeoutMs, 2_147_483_647));
      }),
      new Promise((resolve) => {
        if (!opts.signal) return;
        onAbort = () => resolve('aborted');
        opts.signal.addEventListener('abort', onAbort, { once: true });
      }),
    ]);
    clearTimeout(timer);
    if (outcome === 'timeout' && !opts.requireValues) {
      // Like the Java client: go on with what there is; values arrive as `added` changes.
      opts.signal?.removeEventListener('abort', onAbort);
      if (opts.signal) opts.signal.addEventListener('abort', () => { client.close(); }, { once: true });
      return client;
    }
    if (outcome !== 'ready') {
      opts.signal?.removeEventListener('abort', onAbort);
      await client.close();
      if (outcome === 'aborted') {
        throw new ApolloError(ErrorCode.CLOSED, 'apolloconf: aborted during start-up', { cause: opts.signal.reason });
      }
      const last = client.#lastError;
      throw new ApolloError(ErrorCode.TIMEOUT, `apolloconf: not ready within ${opts.startupTimeoutMs} ms${last ? ` (last error: ${last.message})` : ''}`, { cause: last ?? undefined });
    }
    const loaded = client.#names.some((n) => client.#snapshot(n).status === 'loaded');
    if (!loaded && opts.requireValues) {
      const last = client.#lastError;
      opts.signal?.removeEventListener('abort', onAbort);
      await client.close();
      if (last) throw new ApolloError(last.code, `apolloconf: no namespace could be loaded: ${last.message}`, last);
      throw new ApolloError(ErrorCode.NOT_FOUND, 'apolloconf: no namespace could be loaded');
    }
    if (opts.signal) {
      opts.signal.addEventListener('abort', () => { client.close(); }, { once: true });
    }
    return client;
  }

  /**
   * Reads a namespace's cache file into the engine (at start, and for `watch()`); never
   * rejects. Synchronously when `sync` and the adapter can: the file then serves before any
   * answer of the server can arrive, as at start.
   */
  async #restoreCache(ns, sync = false) {
    const engine = this.#engine;
    const fileName = engine.cacheFileName(ns);
    const path = engine.cachePath(ns);
    if (!fileName || !path) return;
    try {
      const file = { fileName, path };
      const bytes = sync && this.#cache.readSync ? this.#cache.readSync(file) : await this.#cache.read(file);
      // The client may have closed meanwhile; the engine ignores a file that comes after
      // the server's values.
      if (bytes && this.#engine && !this.#closing) this.#engine.restore(ns, bytes);
    } catch (e) {
      this.#emitError(new ApolloError(ErrorCode.CACHE, `apolloconf: cannot read cache file ${fileName}: ${e?.message ?? e}`, { namespace: ns, cause: e }));
    }
  }

  #snapshot(name) {
    return this.#snapshots.get(name) ?? EMPTY;
  }

  /** @internal */
  _snapshot(name) {
    return this.#snapshot(name);
  }

  #emitError(err) {
    this.#lastError = err;
    for (const fn of this.#errorListeners) {
      try { fn(err); } catch (e) { queueMicrotask(() => { throw e; }); }
    }
  }

  // One drain of the engine: first the state (namespaces, their values and the merged view
  // as the engine computed them), then the events, so that listeners see it all.
  #onDrain(json, blobs) {
    const d = JSON.parse(json);
    for (const r of d.requests ?? []) this.#send(r);
    if (d.timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = d.timer === null ? undefined : setTimeout(() => {
        this.#timer = undefined;
        this.#call((e) => e.tick());
      }, d.timer);
    }
    if (d.names) this.#names = d.names;
    for (const n of d.names ?? []) this.#mirrorOf(n);
    for (const n of d.ns ?? []) {
      const s = this.#mirrorOf(n.name);
      s.releaseKey = n.releaseKey ?? undefined;
      s.source = n.source;
      s.status = n.status;
      if (n.content !== undefined) s.content = n.content;
      if (n.values) s.map = new Map(Object.entries(n.values));
    }
    const events = d.events ?? [];
    for (const ev of events) {
      if (ev.type !== 'change') continue;
      const map = this.#mirrorOf(ev.namespace).map;
      for (const c of ev.changes) {
        if (c.newValue === null) map.delete(c.key);
        else map.set(c.key, c.newValue);
      }
    }
    for (const [k, v] of d.merged ?? []) {
      if (v === null) this.#merged.delete(k);
      else this.#merged.set(k, v);
    }
    for (const ev of events) this.#deliver(ev, blobs);
  }

  /** Calls into the engine from the event loop (an answer, the timer), unless closed. */
  #call(fn) {
    const engine = this.#engine;
    if (!engine) return;
    try {
      fn(engine);
    } catch {
      // Only a re-entrant call can fail (never from the event loop): try once more.
      setTimeout(() => { if (this.#engine) fn(this.#engine); }, 0);
    }
  }

  /** Performs one request of a drain message: `[id, url, timeoutMs, yaml, headers]`. */
  #send([id, url, timeoutMs, yaml, headers]) {
    const abort = this.#transport(url, headers, timeoutMs, (kind, message, status, body) => {
      if (!this.#inflight.delete(id)) return;
      const deliver = () => this.#call((e) => (kind ? e.fail(id, kind, message) : e.respond(id, status, body)));
      // A YAML namespace's values wait while the YAML module loads (see watch()).
      if (yaml && this.#yamlWait) this.#yamlWait.then(deliver);
      else deliver();
    });
    this.#inflight.set(id, abort);
  }

  #mirrorOf(name) {
    let s = this.#snapshots.get(name);
    if (!s) {
      s = newSnapshot();
      this.#snapshots.set(name, s);
    }
    return s;
  }

  #deliver(ev, blobs) {
    switch (ev.type) {
      case 'change': {
        if (ev.hits.length === 0) break;
        const event = { namespace: ev.namespace, releaseKey: ev.releaseKey ?? undefined, source: ev.source, changes: ev.changes.map((c) => ({ key: c.key, oldValue: c.oldValue ?? undefined, newValue: c.newValue ?? undefined, type: c.type })) };
        // The engine names the listeners the event is for, with the indexes of their changes.
        for (const [id, ...picked] of ev.hits) {
          const sub = this.#subs.get(id);
          if (!sub) continue;
          sub.deliver(picked.length === 0 ? event : { ...event, changes: picked.map((i) => event.changes[i]) });
        }
        break;
      }
      case 'ready':
        this.#ready?.();
        break;
      case 'persist':
        if (this.#cache && blobs) {
          const cache = this.#cache;
          const bytes = blobs[ev.bytes];
          const file = { fileName: ev.fileName, path: ev.path };
          if (!file.path) break;
          this.#writes = this.#writes.then(() => cache.write(file, bytes)).catch((e) => {
            this.#emitError(new ApolloError(ErrorCode.CACHE, `apolloconf: cannot write cache file ${ev.fileName}: ${e?.message ?? e}`, { namespace: ev.namespace, cause: e }));
          });
        }
        break;
      case 'error':
        this.#emitError(errorFrom(ev.error));
        break;
      case 'refreshed':
        this.#settleRefreshes();
        break;
      case 'closed':
        this.#closed = true;
        this.#settleRefreshes();
        for (const [id, sub] of this.#subs) {
          if (sub.end) {
            this.#subs.delete(id);
            sub.end();
          }
        }
        this.#onClosed?.();
        break;
      default:
        break;
    }
  }

  /** Registers a change listener or iterator with its interest (JSON); returns its id. */
  #subscribe(json, sub) {
    sub.interest = json;
    const id = this.#nextSub++;
    this.#subs.set(id, sub);
    this.#engine?.listen(id, sub.interest);
    return id;
  }

  #unsubscribe(id) {
    if (this.#subs.delete(id)) this.#engine?.unlisten(id);
  }

  /** The value of `key` in the first namespace (configured order) that holds it. */
  get(key, defaultValue) {
    const v = this.#merged.get(key);
    return v === undefined ? defaultValue : v;
  }
  /** `get` parsed as a number (the default when missing or not a number). */
  getNumber(key, defaultValue) { return asNumber(this.#merged.get(key), defaultValue); }
  /** `get` parsed as a boolean (`true` / `false`, any case). */
  getBoolean(key, defaultValue) { return asBoolean(this.#merged.get(key), defaultValue); }
  /** `get` parsed as JSON (the default when missing or invalid). */
  getJSON(key, defaultValue) { return asJSON(this.#merged.get(key), defaultValue); }
  /** Whether any namespace holds `key`. */
  has(key) { return this.#merged.has(key); }

  /** Reads of one configured namespace. */
  namespace(name) {
    if (!this.#snapshots.has(name)) {
      throw new ApolloError(ErrorCode.NOT_FOUND, `apolloconf: namespace ${JSON.stringify(name)} is not configured (add it to \`namespaces\`)`, { namespace: name });
    }
    let v = this.#views.get(name);
    if (!v) {
      v = new NamespaceView(this, name);
      this.#views.set(name, v);
    }
    return v;
  }

  /** The configured namespaces, in lookup order. */
  get namespaces() { return [...this.#names]; }

  /**
   * Watches one more namespace (appended to the lookup order). It is listed by `namespaces`
   * and readable through `namespace(name)` as soon as this returns (status `'loading'`);
   * its values arrive as `added` changes. A cache file of it is read as at start: its
   * values serve until the server answers, whose values then change them like any update;
   * the promise returned resolves once that file has been read (at once without a cache).
   * A YAML namespace watched before the YAML module is loaded (no YAML namespace so far)
   * loads it first; the namespace's cache file and answers wait for it.
   * Watching a namespace again does nothing; an invalid name is a `TypeError`.
   */
  watch(name) {
    if (typeof name !== 'string') throw new TypeError('apolloconf: watch() takes a namespace name');
    if (this.#closed || this.#closing) throw new ApolloError(ErrorCode.CLOSED, 'apolloconf: the client is closed');
    const known = this.#snapshots.has(name);
    let yaml;
    try {
      yaml = this.#engine.watch(name);
    } catch (e) {
      throw new TypeError(`apolloconf: cannot watch ${JSON.stringify(name)}: ${e?.message ?? e}`);
    }
    const restore = () => (!known && this.#cache ? this.#restoreCache(name, true) : undefined);
    if (!yaml || this.#runtime.yamlLoaded()) return Promise.resolve(restore());
    // The YAML module loads first: its cache file, then the server's answers, wait for it.
    if (!this.#yamlWait) {
      const wait = this.#runtime.yaml().catch((e) => {
        this.#emitError(new ApolloError(ErrorCode.NETWORK, `apolloconf: cannot load the YAML module: ${describe(e)}`, { namespace: name, cause: e }));
      }).then(() => {
        if (this.#yamlWait === wait) this.#yamlWait = null;
      });
      this.#yamlWait = wait;
    }
    return this.#yamlWait.then(restore);
  }

  /** Whether `close()` has completed. */
  get closed() { return this.#closed; }

  /** Listen to `change` (optionally with key / prefix / namespace interest) or `error` events. Returns an unsubscribe function. */
  on(type, listener, options) {
    if (typeof listener !== 'function') throw new TypeError('apolloconf: listener must be a function');
    if (type === 'change') {
      const deliver = (ev) => {
        try { listener(ev); } catch (e) { queueMicrotask(() => { throw e; }); }
      };
      const id = this.#subscribe(interest(options), { listener, deliver });
      return () => this.#unsubscribe(id);
    }
    if (type === 'error') {
      this.#errorListeners.add(listener);
      return () => this.#errorListeners.delete(listener);
    }
    throw new TypeError(`apolloconf: unknown event type ${JSON.stringify(type)} (use "change" or "error")`);
  }

  /** Remove a listener added with `on`. */
  off(type, listener) {
    if (type === 'error') {
      this.#errorListeners.delete(listener);
      return;
    }
    for (const [id, sub] of this.#subs) if (sub.listener === listener) this.#unsubscribe(id);
  }

  /** Change events as an async iterator; it ends when the client closes. */
  changes(options) {
    const json = interest(options);
    const queue = [];
    let wake = null;
    let done = this.#closed;
    const sub = {
      deliver(ev) {
        queue.push(ev);
        wake?.();
      },
      end() {
        done = true;
        wake?.();
      },
    };
    const id = done ? 0 : this.#subscribe(json, sub);
    const unsubscribe = () => this.#unsubscribe(id);
    return {
      [Symbol.asyncIterator]() { return this; },
      async next() {
        while (queue.length === 0 && !done) await new Promise((r) => { wake = r; });
        wake = null;
        if (queue.length > 0) return { value: queue.shift(), done: false };
        return { value: undefined, done: true };
      },
      async return() {
        done = true;
        unsubscribe();
        return { value: undefined, done: true };
      },
    };
  }

  #settleRefreshes() {
    const waiters = this.#refreshWaiters;
    this.#refreshWaiters = [];
    for (const w of waiters) w();
  }

  /**
   * Checks every namespace that no server confirmed within `maxAgeMs` (default 0: all) with a
   * conditional request (an unchanged namespace costs a 304) and resolves, with the number
   * of requests made, once they have finished. This is how a client in edge mode stays
   * fresh: call it at the top of each request. Changes arrive as usual before it resolves;
   * failures go to `error` listeners and the values held stay.
   */
  async refresh(options = {}) {
    if (options === null || typeof options !== 'object') throw new TypeError('apolloconf: refresh() takes { maxAgeMs }');
    const maxAgeMs = options.maxAgeMs ?? 0;
    if (typeof maxAgeMs !== 'number' || !(maxAgeMs >= 0)) throw bad('maxAgeMs', 'must be a number of milliseconds >= 0');
    if (this.#closed || this.#closing) throw new ApolloError(ErrorCode.CLOSED, 'apolloconf: the client is closed');
    // The engine's `refreshed` event settles it (within this call when nothing was queued).
    const done = new Promise((resolve) => { this.#refreshWaiters.push(resolve); });
    const queued = this.#engine.refresh(maxAgeMs);
    await done;
    return queued;
  }

  /** `"background"` (long poll) or `"edge"` (requests only in `create` and `refresh`). */
  get mode() { return this.#mode; }

  /** Request counters, the services in use and the last error. */
  metrics() {
    const m = JSON.parse(this.#finalMetrics ?? this.#engine.metrics());
    if (m.lastError) m.lastError = errorFrom(m.lastError);
    return m;
  }

  /** Stops the client: aborts every request and timer. Idempotent. */
  close() {
    if (this.#closing) return this.#closing;
    const closedEvent = new Promise((resolve) => { this.#onClosed = resolve; });
    this.#closing = (async () => {
      if (!this.#closed) {
        try {
          this.#engine.close();
        } catch {
          // Re-entrant close from a listener: retry once the current call returns.
          await Promise.resolve();
          this.#engine.close();
        }
        // The engine forgot its requests: abort them (and the timer, should one be left).
        for (const abort of this.#inflight.values()) abort();
        this.#inflight.clear();
        clearTimeout(this.#timer);
        await closedEvent;
      }
      // Release the engine's memory; reads keep working from the JS-side mirror.
      if (this.#finalMetrics === null) {
        this.#finalMetrics = this.#engine.metrics();
        this.#engine.free();
        this.#engine = null;
      }
      await this.#writes;
    })();
    return this.#closing;
  }

  [asyncDispose]() {
    return this.close();
  }
}

const PRIVATE = Symbol('apolloconf.private');

/**
 * Binds the client class to a runtime: how to load the engine and the YAML module
 * (`loadYaml()` resolves to its `flatten`), the transport (default: `fetch`), the default
 * cache.
 */
export function bindRuntime(runtime) {
  let loading = null;
  let yamlLoading = null;
  let yamlLoaded = false;
  const load = () => (loading ??= runtime.load().catch((e) => { loading = null; throw e; }));
  const rt = {
    transport: fetchTransport(),
    ...runtime,
    load,
    // The YAML module, loaded once and plugged into the engine (shared by every client).
    yaml: () => (yamlLoading ??= Promise.all([load(), runtime.loadYaml()]).then(([engine, flatten]) => {
      engine.setYamlFlattener(flatten);
      yamlLoaded = true;
    }).catch((e) => { yamlLoading = null; throw e; })),
    yamlLoaded: () => yamlLoaded,
  };
  return class extends ApolloClient {
    static create(options) {
      return ApolloClient._create.call(this, rt, options);
    }
  };
}
