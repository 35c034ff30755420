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
const TIMING_NAMES = new Set([
  'refreshIntervalMs', 'connectTimeoutMs', 'readTimeoutMs', 'longPollInitialDelayMs',
  'longPollReadTimeoutMs', 'fetchRetryInitialMs', 'fetchRetryMaxMs', 'longPollRetryInitialMs',
  'longPollRetryMaxMs', 'loadConfigQps', 'longPollQps', 'discoveryConnectTimeoutMs',
  'discoveryReadTimeoutMs', 'discoveryRefreshIntervalMs', 'discoveryRetryInitialMs',
  'discoveryRetryMaxMs', 'discoveryQps', 'lagWindowMs',
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

function serverList(o, name) {
  const v = o[name];
  if (v === undefined || v === null) return undefined;
  const list = typeof v === 'string' ? v.split(',') : v;
  if (!Array.isArray(list) || list.some((s) => typeof s !== 'string')) {
    throw bad(name, 'must be a URL string, a comma-separated list or an array of URLs');
  }
  const clean = list.map((s) => s.trim()).filter((s) => s !== '');
  if (clean.length === 0) throw bad(name, 'is empty');
  for (const u of clean) {
    if (!/^https?:\/\/[^/\s]+/i.test(u)) throw bad(name, `holds ${JSON.stringify(u)}, which is not an http(s) URL`);
  }
  return clean.join(',');
}

/** Checks the options and splits them into the engine's JSON and the JS-side settings. */
export function checkOptions(options, defaultMode = 'background') {
  if (options === null || typeof options !== 'object') {
    throw new TypeError('apolloconf: ApolloClient.create() needs an options object');
  }
  for (const k of Object.keys(options)) {
    if (!OPTION_NAMES.has(k)) throw new TypeError(`apolloconf: unknown option \`${k}\``);
  }
  const appId = options.appId;
  if (typeof appId !== 'string' || appId.trim() === '') throw bad('appId', 'must be a non-empty string');
  const metaServer = serverList(options, 'metaServer');
  const configServer = serverList(options, 'configServer');
  if (metaServer === undefined && configServer === undefined) {
    throw new TypeError('apolloconf: option `metaServer` or `configServer` is required');
  }
  let namespaces = options.namespaces ?? ['application'];
  if (typeof namespaces === 'string') namespaces = [namespaces];
  if (!Array.isArray(namespaces) || namespaces.length === 0 ||
      namespaces.some((n) => typeof n !== 'string' || n.trim() === '')) {
    throw bad('namespaces', 'must be a non-empty array of namespace names');
  }
  if (new Set(namespaces).size !== namespaces.length) throw bad('namespaces', 'lists a namespace twice');
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
      if (!TIMING_NAMES.has(k)) throw bad('timing', `has an unknown field \`${k}\``);
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw bad(`timing.${k}`, 'must be an integer >= 0');
      timing[k] = v;
    }
  }
  const mode = options.mode ?? defaultMode;
  if (mode !== 'background' && mode !== 'edge') throw bad('mode', 'must be "background" or "edge"');
  const engine = {
    appId,
    background: mode === 'background',
    metaServer,
    configServer,
    cluster: optString(options, 'cluster'),
    dataCenter: optString(options, 'dataCenter'),
    namespaces,
    label: optString(options, 'label'),
    ip: optString(options, 'ip'),
    secret: optString(options, 'secret'),
    timing,
  };
  return { engine, appId, namespaces, startupTimeoutMs, requireValues, listeners, signal, mode, cache: options.cache };
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

/** A cache over a `{ get(key), set(key, value) }` store; values are strings. */
export function storeCache(store, prefix = '') {
  return {
    async read(fileName) {
      const v = await store.get(prefix + fileName);
      if (v === undefined || v === null) return null;
      return typeof v === 'string' ? fromLatin1(v) : new Uint8Array(v);
    },
    async write(fileName, bytes) {
      await store.set(prefix + fileName, latin1(bytes));
    },
  };
}

/** The browser's `localStorage`, keys prefixed with `apolloconf:`. */
export function localStorageCache() {
  const ls = globalThis.localStorage;
  if (!ls) return null;
  return storeCache({ get: (k) => ls.getItem(k), set: (k, v) => ls.setItem(k, v) }, 'apolloconf:');
}

/**
 * The Java-compatible file cache: `{root}/{appId}/config-cache/{fileName}`, written to a
 * temporary file and renamed into place. `fs` supplies readFile / writeFile / rename / mkdir.
 */
export function fileCache(root, appId, fs) {
  const dir = `${root.replace(/[\\/]+$/, '')}/${appId}/config-cache`;
  let made;
  return {
    dir,
    async read(fileName) {
      try {
        return await fs.readFile(`${dir}/${fileName}`);
      } catch (e) {
        if (fs.isNotFound(e)) return null;
        throw e;
      }
    },
    async write(fileName, bytes) {
      made ??= fs.mkdir(dir);
      await made;
      const tmp = `${dir}/.${fileName}.${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}.tmp`;
      await fs.writeFile(tmp, bytes);
      await fs.rename(tmp, `${dir}/${fileName}`);
    },
  };
}

function resolveCache(choice, runtime, appId) {
  if (choice === undefined) return runtime.defaultCache(appId);
  if (choice === false || choice === null || choice === 'none') return null;
  if (choice === 'localStorage') {
    const c = localStorageCache();
    if (!c) throw bad('cache', '"localStorage" is not available in this runtime');
    return c;
  }
  if (choice === 'file' || (typeof choice === 'object' && typeof choice.dir === 'string')) {
    if (!runtime.fileCache) throw bad('cache', `a file cache is not available in ${runtime.name}`);
    return runtime.fileCache(choice === 'file' ? runtime.cacheRoot() : choice.dir, appId);
  }
  if (typeof choice === 'object' && typeof choice.get === 'function' && typeof choice.set === 'function') {
    return storeCache(choice);
  }
  throw bad('cache', 'must be false, "file", { dir }, "localStorage" or a { get(key), set(key, value) } store');
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

function toSnapshot(raw) {
  return {
    map: new Map(Object.entries(raw.properties)),
    content: raw.isProperties ? undefined : raw.content ?? undefined,
    releaseKey: raw.releaseKey ?? undefined,
    source: raw.source,
    status: raw.status,
  };
}

function interest(opts) {
  if (opts === undefined || opts === null) return { match: null, namespace: undefined };
  if (typeof opts !== 'object') throw new TypeError('apolloconf: listener options must be an object');
  const keys = opts.keys ?? [];
  const prefixes = opts.prefixes ?? [];
  if (!Array.isArray(keys) || !Array.isArray(prefixes)) {
    throw new TypeError('apolloconf: `keys` and `prefixes` must be arrays of strings');
  }
  const keySet = new Set(keys);
  const match = keys.length === 0 && prefixes.length === 0
    ? null
    : (k) => keySet.has(k) || prefixes.some((p) => k.startsWith(p));
  return { match, namespace: opts.namespace };
}

function filtered(ev, sel) {
  if (sel.namespace !== undefined && sel.namespace !== ev.namespace) return null;
  if (!sel.match) return ev;
  const changes = ev.changes.filter((c) => sel.match(c.key));
  return changes.length === 0 ? null : { ...ev, changes };
}

function errorFrom(e) {
  return new ApolloError(e.code, e.message, e);
}

const asyncDispose = Symbol.asyncDispose ?? Symbol.for('Symbol.asyncDispose');

/** The client. Create it with `await ApolloClient.create(options)`. */
export class ApolloClient {
  #engine = null;
  #cache = null;
  #names = [];
  #snapshots = new Map();
  #merged = new Map();
  #views = new Map();
  #listeners = { change: new Set(), error: new Set() };
  #iterators = new Set();
  #closed = false;
  #closing = null;
  #onClosed = null;
  #ready = null;
  #lastError = null;
  #writes = Promise.resolve();
  #refreshWaiters = [];
  #mode = 'background';
  #finalMetrics = null;

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
    const cache = resolveCache(opts.cache, runtime, opts.appId);
    if (opts.signal?.aborted) throw new ApolloError(ErrorCode.CLOSED, 'apolloconf: aborted before start', { cause: opts.signal.reason });
    const wasm = await runtime.load();
    const client = new this(PRIVATE);
    client.#cache = cache;
    client.#names = opts.namespaces;
    client.#mode = opts.mode;
    for (const [type, fn] of Object.entries(opts.listeners)) client.on(type, fn);
    let engine;
    try {
      engine = new wasm.WasmClient(JSON.stringify(opts.engine), (json, bytes) => client.#onEvent(json, bytes));
    } catch (e) {
      throw new TypeError(`apolloconf: invalid options: ${e?.message ?? e}`);
    }
    client.#engine = engine;
    if (cache) {
      for (const ns of opts.namespaces) {
        const fileName = engine.cacheFileName(ns);
        if (!fileName) continue;
        try {
          const bytes = await cache.read(fileName);
          if (bytes) engine.restore(ns, bytes);
        } catch (e) {
          client.#emitError(new ApolloError(ErrorCode.CACHE, `apolloconf: cannot read cache file ${fileName}: ${e?.message ?? e}`, { namespace: ns, cause: e }));
        }
      }
    }
    client.#refreshAll();
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
      client.#refreshAll();
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
    client.#refreshAll();
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

  #snapshot(name) {
    return this.#snapshots.get(name) ?? EMPTY;
  }

  /** @internal */
  _snapshot(name) {
    return this.#snapshot(name);
  }

  #rebuildMerged() {
    const merged = new Map();
    for (const n of this.#names) {
      for (const [k, v] of this.#snapshot(n).map) if (!merged.has(k)) merged.set(k, v);
    }
    this.#merged = merged;
  }

  #refreshAll() {
    for (const raw of JSON.parse(this.#engine.snapshot())) {
      if (!this.#names.includes(raw.name)) this.#names.push(raw.name);
      this.#snapshots.set(raw.name, toSnapshot(raw));
    }
    this.#rebuildMerged();
  }

  #refreshOne(name) {
    const json = this.#engine.namespaceSnapshot(name);
    if (json === undefined) return;
    this.#snapshots.set(name, toSnapshot(JSON.parse(json)));
    this.#rebuildMerged();
  }

  #emitError(err) {
    this.#lastError = err;
    for (const fn of this.#listeners.error) {
      try { fn(err); } catch (e) { queueMicrotask(() => { throw e; }); }
    }
  }

  #onEvent(json, bytes) {
    const ev = JSON.parse(json);
    switch (ev.type) {
      case 'loaded':
        this.#refreshOne(ev.namespace);
        break;
      case 'change': {
        this.#refreshOne(ev.namespace);
        const event = { namespace: ev.namespace, releaseKey: ev.releaseKey ?? undefined, source: ev.source, changes: ev.changes.map((c) => ({ key: c.key, oldValue: c.oldValue ?? undefined, newValue: c.newValue ?? undefined, type: c.type })) };
        for (const [fn, sel] of this.#listeners.change) {
          const hit = filtered(event, sel);
          if (hit) {
            try { fn(hit); } catch (e) { queueMicrotask(() => { throw e; }); }
          }
        }
        for (const it of this.#iterators) it.push(event);
        break;
      }
      case 'ready':
        this.#ready?.();
        break;
      case 'persist':
        if (this.#cache && bytes) {
          const cache = this.#cache;
          this.#writes = this.#writes.then(() => cache.write(ev.fileName, bytes)).catch((e) => {
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
        for (const it of this.#iterators) it.end();
        this.#iterators.clear();
        this.#onClosed?.();
        break;
      default:
        break;
    }
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
   * its values arrive as `added` changes. Watching a namespace again does nothing; an
   * invalid name is a `TypeError`.
   */
  watch(name) {
    if (typeof name !== 'string') throw new TypeError('apolloconf: watch() takes a namespace name');
    if (this.#closed || this.#closing) throw new ApolloError(ErrorCode.CLOSED, 'apolloconf: the client is closed');
    try {
      this.#engine.watch(name);
    } catch (e) {
      throw new TypeError(`apolloconf: cannot watch ${JSON.stringify(name)}: ${e?.message ?? e}`);
    }
    this.#refreshAll();
  }

  /** Whether `close()` has completed. */
  get closed() { return this.#closed; }

  /** Listen to `change` (optionally with key / prefix / namespace interest) or `error` events. Returns an unsubscribe function. */
  on(type, listener, options) {
    if (typeof listener !== 'function') throw new TypeError('apolloconf: listener must be a function');
    if (type === 'change') {
      const sel = interest(options);
      const entry = [listener, sel];
      this.#listeners.change.add(entry);
      return () => this.#listeners.change.delete(entry);
    }
    if (type === 'error') {
      this.#listeners.error.add(listener);
      return () => this.#listeners.error.delete(listener);
    }
    throw new TypeError(`apolloconf: unknown event type ${JSON.stringify(type)} (use "change" or "error")`);
  }

  /** Remove a listener added with `on`. */
  off(type, listener) {
    if (type === 'error') {
      this.#listeners.error.delete(listener);
      return;
    }
    for (const entry of this.#listeners.change) if (entry[0] === listener) this.#listeners.change.delete(entry);
  }

  /** Change events as an async iterator; it ends when the client closes. */
  changes(options) {
    const sel = interest(options);
    const queue = [];
    let wake = null;
    let done = this.#closed;
    const iterators = this.#iterators;
    const sink = {
      push(ev) {
        const hit = filtered(ev, sel);
        if (!hit) return;
        queue.push(hit);
        wake?.();
      },
      end() {
        done = true;
        wake?.();
      },
    };
    if (!done) iterators.add(sink);
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
        iterators.delete(sink);
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
    const done = new Promise((resolve) => { this.#refreshWaiters.push(resolve); });
    const queued = this.#engine.refresh(maxAgeMs);
    if (!this.#engine.isRefreshing()) this.#settleRefreshes();
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
        await closedEvent;
      }
      // Release the engine's memory; reads keep working from the JS snapshot.
      if (this.#finalMetrics === null) {
        this.#finalMetrics = this.#engine.metrics();
        this.#engine.free();
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

/** Binds the client class to a runtime (how to load the engine and the default cache). */
export function bindRuntime(runtime) {
  let loading = null;
  const rt = { ...runtime, load: () => (loading ??= runtime.load().catch((e) => { loading = null; throw e; })) };
  return class extends ApolloClient {
    static create(options) {
      return ApolloClient._create.call(this, rt, options);
    }
  };
}
