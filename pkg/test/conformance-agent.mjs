// The conformance agent: the subject protocol of tests/conformance/README.md (the shared
// scenarios of tests/scenarios/) implemented on the package's public API, the same in
// every runtime. `subject.mjs <runtime> --tarball T --conformance` runs it inside Node,
// Deno, Chromium or workerd and relays its lines. One JSON object per line each way.
//
//   {"id":1,"cmd":"start","options":{appId, configService, metaServer, cluster, dataCenter,
//     namespaces, label, ip, secret, cacheDir, startupTimeoutMs, timing}}
//   {"id":2,"cmd":"get","key":"k","namespace":null} -> {"value": "v" | null}
//   {"id":3,"cmd":"snapshot"} / {"cmd":"watch","namespace":"ns"} / {"cmd":"metrics"} / {"cmd":"close"}
// Events: {"event":"change","namespace","releaseKey","source","changes":[{key,old,new,kind}]}
//         {"event":"error","code","message","namespace"}
//
// `cacheFor(cacheDir)` is the runtime's cache for a cacheDir (`{ dir }` where there is a
// file system, localStorage in Chromium, a store in workerd); `onClosed()` runs after the
// close reply (the runtime's way to let the process end).

function failure(e) {
  // A TypeError is the package's answer to options that cannot work.
  const code = e instanceof TypeError ? 'CONFIG' : (e?.code ?? 'CONFIG');
  return { code, message: String(e?.message ?? e) };
}

function errorEvent(e) {
  return { code: e?.code ?? null, message: String(e?.message ?? e), namespace: e?.namespace ?? null };
}

export function createConformanceAgent({ ApolloClient, emit, cacheFor, onClosed = () => {} }) {
  let client = null;
  const send = (obj) => emit(JSON.stringify(obj));
  const closedError = () => Object.assign(new Error('no client: send start first'), { code: 'CLOSED' });
  const need = () => {
    if (!client) throw closedError();
    return client;
  };

  function options(o) {
    const opts = { appId: o.appId, mode: 'background', requireValues: false };
    if (o.configService != null) opts.configServer = o.configService;
    if (o.metaServer != null) opts.metaServer = o.metaServer;
    for (const k of ['cluster', 'dataCenter', 'namespaces', 'label', 'ip', 'secret', 'startupTimeoutMs']) {
      if (o[k] != null) opts[k] = o[k];
    }
    opts.cache = typeof o.cacheDir === 'string' ? cacheFor(o.cacheDir) : false;
    // Every knob of the core (`Timing::NAMES`) is an option of the package, by the same name.
    if (o.timing && typeof o.timing === 'object') opts.timing = o.timing;
    return opts;
  }

  const cmds = {
    async start(cmd) {
      if (client) throw Object.assign(new Error('already started'), { code: 'CONFIG' });
      const t0 = Date.now();
      const opts = options(cmd.options ?? {});
      // Listeners are attached in `create()` through this hook, so nothing that happens
      // during start-up (an error, a change after values from the cache) is missed.
      opts.listeners = {
        change: (ev) => send({
          event: 'change', namespace: ev.namespace, releaseKey: ev.releaseKey ?? null, source: ev.source,
          changes: ev.changes.map((c) => ({ key: c.key, old: c.oldValue ?? null, new: c.newValue ?? null, kind: c.type.toLowerCase() })),
        }),
        error: (e) => send({ event: 'error', ...errorEvent(e) }),
      };
      client = await ApolloClient.create(opts);
      return { ms: Date.now() - t0 };
    },
    get({ key, namespace }) {
      const c = need();
      if (namespace === undefined || namespace === null) return { value: c.get(key) ?? null };
      if (!c.namespaces.includes(namespace)) {
        throw Object.assign(new Error(`namespace ${JSON.stringify(namespace)} is not watched`), { code: 'NOT_FOUND' });
      }
      return { value: c.namespace(namespace).get(key) ?? null };
    },
    snapshot() {
      const c = need();
      const namespaces = {};
      for (const n of c.namespaces) {
        const v = c.namespace(n);
        namespaces[n] = { releaseKey: v.releaseKey ?? null, source: v.source, status: v.status, properties: v.toObject(), content: v.content ?? null };
      }
      return { namespaces };
    },
    async watch({ namespace }) {
      // Resolves once its cache file (if any) serves.
      await need().watch(namespace);
      return {};
    },
    metrics() {
      const m = need().metrics();
      return { metrics: { ...m, lastError: m.lastError ? errorEvent(m.lastError) : null } };
    },
    async close() {
      await client?.close();
      return {};
    },
  };

  let closed = false;
  return async function handle(line) {
    let cmd;
    try {
      cmd = JSON.parse(line);
    } catch (e) {
      send({ id: null, ok: false, error: { code: 'CONFIG', message: `bad command line: ${e.message}` } });
      return;
    }
    const id = cmd.id ?? null;
    if (closed) return;
    const fn = cmds[cmd.cmd];
    try {
      if (!fn) throw Object.assign(new Error(`unknown command ${JSON.stringify(cmd.cmd)}`), { code: 'CONFIG' });
      send({ id, ok: true, ...(await fn(cmd)) });
    } catch (e) {
      send({ id, ok: false, error: failure(e) });
    }
    if (cmd.cmd === 'close') {
      closed = true;
      onClosed();
    }
  };
}
