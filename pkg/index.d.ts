// Type definitions of the `apolloconf` package (hand-written; the wasm glue is internal).

/** Machine-readable codes of {@link ApolloError}. */
export type ErrorCodeName =
  | 'NOT_FOUND'
  | 'UNAUTHORIZED'
  | 'TIMEOUT'
  | 'NETWORK'
  | 'BAD_RESPONSE'
  | 'CLOSED'
  | 'CACHE';

/** The error codes as constants. */
export declare const ErrorCode: Readonly<{ [K in ErrorCodeName]: K }>;

/** An error of the client. Wrong options are `TypeError`s instead. */
export declare class ApolloError extends Error {
  readonly name: 'ApolloError';
  /** What went wrong. */
  readonly code: ErrorCodeName;
  /** The namespace concerned, if any. */
  readonly namespace?: string;
  /** The HTTP status, when the server answered one. */
  readonly status?: number;
  /** The URL concerned, if any. */
  readonly url?: string;
  /** The request concerned: `discovery`, `configs` or `notifications`. */
  readonly request?: string;
}

/** A `{ get, set }` store used as the cache (for example a Workers KV namespace). Keys are
 * cache file names (`{appId}+{cluster}+{namespace}.properties`), values Java properties text. */
export interface CacheStore {
  get(key: string): string | null | undefined | Promise<string | null | undefined>;
  set(key: string, value: string): void | Promise<void>;
}

/**
 * Where cached configuration is kept, read at start when the server cannot be reached:
 * - `false` / `'none'`: no cache (the default in workers);
 * - `'file'`: the Java client's file cache under `$APOLLO_CACHE_DIR` or `/opt/data` (Node, Deno);
 * - `{ dir }`: the same layout under `dir`: `{dir}/{appId}/config-cache/{appId}+{cluster}+{namespace}.properties`;
 * - `'localStorage'`: the browser's localStorage (the default in browsers);
 * - a {@link CacheStore}.
 */
export type CacheOption = false | 'none' | 'file' | 'localStorage' | { dir: string } | CacheStore;

/**
 * Timing overrides: durations in milliseconds (`…Ms`), rates per second (`…Qps`); the
 * defaults are the Java client's. These are exactly the engine's knob names (a test of the
 * package checks that this list and the engine's agree); any other name is a `TypeError`.
 */
export interface TimingOptions {
  refreshIntervalMs?: number;
  connectTimeoutMs?: number;
  readTimeoutMs?: number;
  longPollInitialDelayMs?: number;
  longPollReadTimeoutMs?: number;
  fetchRetryInitialMs?: number;
  fetchRetryMaxMs?: number;
  longPollRetryInitialMs?: number;
  longPollRetryMaxMs?: number;
  loadConfigQps?: number;
  longPollQps?: number;
  /** Discovery (`metaServer`): timeouts of `/services/config`, how often the list is refreshed, the retry back-off and rate. */
  discoveryConnectTimeoutMs?: number;
  discoveryReadTimeoutMs?: number;
  discoveryRefreshIntervalMs?: number;
  discoveryRetryInitialMs?: number;
  discoveryRetryMaxMs?: number;
  discoveryQps?: number;
  /** How long a notified release may lag on the instance that serves `/configs` before the client stops retrying it early. */
  lagWindowMs?: number;
  /** Jitter of every retry back-off, in percent (default 25): a delay `d` is drawn from `[d × (100 − jitterPercent) / 100, d]`; at most 100. */
  jitterPercent?: number;
}

interface CommonOptions {
  /** The application id (`app.id`). */
  appId: string;
  /** The cluster (default: the data center when one is given, else `default`). */
  cluster?: string;
  /** The data center (`idc`), used for cluster fallback; also the cluster when none is given. */
  dataCenter?: string;
  /** Namespaces, in lookup order (default `['application']`). Non-properties ones keep their suffix, e.g. `settings.json`. An empty or duplicate name is a `TypeError`. */
  namespaces?: string[];
  /** Gray-release label. */
  label?: string;
  /** The client ip reported to the server (gray rules by ip). */
  ip?: string;
  /** Access-key secret: requests are signed with it. */
  secret?: string;
  /** The cache; see {@link CacheOption}. */
  cache?: CacheOption;
  /** How long `create()` waits for the first load in milliseconds (default 30000; `Infinity`: no limit). */
  startupTimeoutMs?: number;
  /**
   * `true` (default): `create()` rejects when no namespace could be loaded (from the server
   * or the cache) or start-up timed out. `false`: like the Java client, `create()` resolves
   * anyway (after `startupTimeoutMs` at the latest) with what there is, and the client keeps
   * retrying; values that arrive later fire `added` changes.
   */
  requireValues?: boolean;
  /**
   * Listeners attached before start-up, so that nothing of `create()` is missed: errors
   * while it loads (`UNAUTHORIZED`, `CACHE`, ...) and changes of values restored from the
   * cache and then replaced by the server. Same as calling `on()` right after.
   */
  listeners?: { change?: (event: ChangeEvent) => void; error?: (error: ApolloError) => void };
  /** Aborting it rejects a pending `create()` or closes the client. */
  signal?: AbortSignal;
  /** Timing overrides. */
  timing?: TimingOptions;
  /**
   * `'background'` (default in Node, Deno and browsers): one long poll plus the periodic
   * refresh keep the values current. `'edge'` (default in workers): requests are made only
   * by `create()` and {@link ApolloClient.refresh}; nothing runs between calls.
   */
  mode?: 'background' | 'edge';
}

/** Options of {@link ApolloClient.create}: a meta server (discovery) or config service URLs. */
export type ApolloClientOptions =
  | (CommonOptions & { metaServer: string | string[]; configServer?: string | string[] })
  | (CommonOptions & { configServer: string | string[]; metaServer?: string | string[] });

/** The change of one key. */
export interface Change {
  key: string;
  /** Undefined when added. */
  oldValue: string | undefined;
  /** Undefined when deleted. */
  newValue: string | undefined;
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
}

/** The changes of one namespace from one release. */
export interface ChangeEvent {
  namespace: string;
  releaseKey: string | undefined;
  source: 'server' | 'cache';
  /** Sorted by key; never empty (only the keys of interest for a filtered listener). */
  changes: Change[];
}

/** Which changes a listener wants; empty means all. A non-array or non-string is a `TypeError`. */
export interface ChangeInterest {
  /** Exact keys. */
  keys?: string[];
  /** Key prefixes. */
  prefixes?: string[];
  /** Only this namespace. */
  namespace?: string;
}

/** Typed reads, shared by the client (merged lookup) and each namespace. */
export interface Reads {
  get(key: string): string | undefined;
  get(key: string, defaultValue: string): string;
  get<D>(key: string, defaultValue: D): string | D;
  getNumber(key: string): number | undefined;
  getNumber<D = number>(key: string, defaultValue: D): number | D;
  getBoolean(key: string): boolean | undefined;
  getBoolean<D = boolean>(key: string, defaultValue: D): boolean | D;
  getJSON<T = unknown>(key: string): T | undefined;
  getJSON<T = unknown, D = T>(key: string, defaultValue: D): T | D;
  has(key: string): boolean;
}

/** One namespace's values. */
export interface NamespaceView extends Reads {
  readonly name: string;
  /** The whole text of a non-properties namespace (json, yaml, xml, txt). */
  readonly content: string | undefined;
  readonly releaseKey: string | undefined;
  readonly source: 'none' | 'cache' | 'server';
  readonly status: 'loading' | 'loaded' | 'not-found' | 'unavailable';
  keys(): string[];
  toObject(): Record<string, string>;
}

/** Request counts by outcome. */
export interface Counter {
  sent: number;
  ok: number;
  notModified: number;
  notFound: number;
  unauthorized: number;
  otherStatus: number;
  transportError: number;
  parseError: number;
}

/** What the client has done so far. */
export interface Metrics {
  discovery: Counter;
  configs: Counter;
  notifications: Counter;
  lastError: ApolloError | null;
  longPollService: string | null;
  services: string[];
}

/** A client of the Apollo configuration center. */
export declare class ApolloClient implements Reads {
  private constructor();
  /**
   * Validates the options (a `TypeError` naming a wrong one), loads the engine, restores the
   * cache, and resolves once every namespace has settled. Rejects with an {@link ApolloError}
   * when no namespace could be loaded (from the server or the cache), on `startupTimeoutMs`
   * (`TIMEOUT`) or when `signal` aborts (`CLOSED`).
   */
  static create(options: ApolloClientOptions): Promise<ApolloClient>;

  get(key: string): string | undefined;
  get(key: string, defaultValue: string): string;
  get<D>(key: string, defaultValue: D): string | D;
  getNumber(key: string): number | undefined;
  getNumber<D = number>(key: string, defaultValue: D): number | D;
  getBoolean(key: string): boolean | undefined;
  getBoolean<D = boolean>(key: string, defaultValue: D): boolean | D;
  getJSON<T = unknown>(key: string): T | undefined;
  getJSON<T = unknown, D = T>(key: string, defaultValue: D): T | D;
  has(key: string): boolean;

  /** A configured namespace (an `ApolloError` `NOT_FOUND` for one not configured). */
  namespace(name: string): NamespaceView;
  /** The configured namespaces, in lookup order. */
  readonly namespaces: string[];
  /** Whether the client is closed. */
  readonly closed: boolean;
  /**
   * Watches one more namespace, appended to the lookup order: listed by `namespaces` and
   * readable through `namespace(name)` as soon as this returns (status `'loading'`); its
   * values arrive as `added` changes. A cache file of it is read as at start: its values
   * serve until the server answers, whose values then change them like any update; the
   * promise resolves once that file has been read (at once without a cache; it never
   * rejects, cache errors go to `error` listeners). A YAML namespace watched before the
   * YAML module is loaded (no YAML namespace so far) loads it first; its cache file and
   * values wait for it, and the promise resolves once both are read (a module that cannot be loaded is a
   * `NETWORK` error for `error` listeners). Again for a watched one: nothing. An invalid
   * name (empty, control characters): `TypeError`, thrown. After `close()`: `ApolloError`
   * `CLOSED`, thrown.
   */
  watch(name: string): Promise<void>;

  /** Calls `listener` on every change of interest; returns an unsubscribe function. */
  on(type: 'change', listener: (event: ChangeEvent) => void, interest?: ChangeInterest): () => void;
  /** Calls `listener` on every failure the client keeps going through (it retries). */
  on(type: 'error', listener: (error: ApolloError) => void): () => void;
  off(type: 'change' | 'error', listener: (arg: never) => void): void;
  /** Change events as an async iterator that ends when the client closes. */
  changes(interest?: ChangeInterest): AsyncIterableIterator<ChangeEvent>;

  /**
   * Checks every namespace that no server confirmed within `maxAgeMs` (default 0: all) with
   * a conditional request (an unchanged namespace costs a 304); resolves with the number of
   * requests made once they have finished. Edge mode's way to stay fresh.
   */
  refresh(options?: { maxAgeMs?: number }): Promise<number>;
  /** The update mode. */
  readonly mode: 'background' | 'edge';

  /** Request counters, the services in use and the last error. */
  metrics(): Metrics;
  /** Stops every request and timer; resolves when closed (idempotent). */
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}
