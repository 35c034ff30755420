// The runtime-independent check of the packed package, run inside every runtime (Node,
// Deno, Chromium, workerd). It needs only `fetch`, timers and the package's ApolloClient:
// it publishes through the test server's admin API itself. The admin API refuses web
// pages of other origins, so in Chromium the driver lends its own `admin` (run.mjs,
// `globalThis.__apolloconfAdmin`).
//
// run({ ApolloClient, ApolloError, server, runtime, cache, log }) resolves to
// { runtime, checks } or rejects with the first failed check.

const CLOSED_PORT_URL = 'http://127.0.0.1:59999'; // not a fetch "bad port" (Deno blocks those)

export async function admin(server, method, path, body) {
  if (globalThis.__apolloconfAdmin) return globalThis.__apolloconfAdmin(server, method, path, body);
  const res = await fetch(`${server}/__admin/${path}`, {
    method,
    headers: body === undefined ? undefined : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`admin ${method} ${path}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

export function publish(server, appId, namespace, configurations) {
  return admin(server, 'POST', `apps/${appId}/clusters/default/namespaces/${namespace}/releases`, { configurations });
}

export function publishContent(server, appId, namespace, content) {
  return admin(server, 'POST', `apps/${appId}/clusters/default/namespaces/${namespace}/releases`, { content });
}

// Counts the WebAssembly instances of the YAML module (the one that exports `flatten`) and
// of the engine (`__wbg_wasmclient_free`; the runtime's own, e.g. undici's, are not), in
// whatever way the package instantiates it in this runtime (compiled module + `new
// WebAssembly.Instance`, `instantiate`, `instantiateStreaming`).
function wasmProbe() {
  const WA = globalThis.WebAssembly;
  if (WA.__apolloconfProbe) return WA.__apolloconfProbe;
  const probe = { yaml: 0, engine: 0 };
  const note = (module) => {
    const names = WA.Module.exports(module).map((e) => e.name);
    if (names.includes('flatten')) probe.yaml++;
    else if (names.includes('__wbg_wasmclient_free')) probe.engine++;
  };
  const Instance = WA.Instance;
  function Probed(module, imports) {
    note(module);
    return new Instance(module, imports);
  }
  Probed.prototype = Instance.prototype;
  WA.Instance = Probed;
  for (const name of ['instantiate', 'instantiateStreaming']) {
    const orig = WA[name];
    if (typeof orig !== 'function') continue;
    WA[name] = async function (source, imports) {
      const r = await orig.call(this, source, imports);
      note(r.module ?? source);
      return r;
    };
  }
  WA.__apolloconfProbe = probe;
  return probe;
}

async function until(cond) {
  while (!cond()) await new Promise((r) => setTimeout(r, 10));
}

function within(ms, promise, what) {
  let t;
  return Promise.race([
    promise.finally(() => clearTimeout(t)),
    new Promise((_, reject) => { t = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms); }),
  ]);
}

async function rejects(promise, check, what) {
  try {
    await promise;
  } catch (e) {
    if (!check(e)) throw new Error(`${what}: wrong error ${e?.name} ${e?.code ?? ''}: ${e?.message}`);
    return e;
  }
  throw new Error(`${what}: did not reject`);
}

export async function run({ ApolloClient, ApolloError, server, runtime, cache, log = () => {} }) {
  const wasm = wasmProbe(); // before the first create(): nothing is instantiated at import
  const checks = [];
  const check = (name, cond, detail = '') => {
    if (!cond) throw new Error(`check failed: ${name} ${detail}`);
    checks.push(name);
    log(`ok ${name}`);
  };
  const appId = `app-${runtime}-${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
  const fast = { longPollInitialDelayMs: 0, jitterPercent: 10 }; // every knob of the engine is an option

  await publish(server, appId, 'application', {
    greeting: 'hello', 'timeout.ms': '1500', 'feature.on': 'TRUE', 'json.val': '{"a":[1,2]}', 'db.url': 'jdbc:x', 'db.pool': '8',
  });
  await publishContent(server, appId, 'settings.json', '{"x":1}');
  await publishContent(server, appId, 'app.yaml', 'server:\n  port: 8080\nlist:\n  - a\n  - b\n');

  // A wrong option is a TypeError that names it.
  const te = await rejects(ApolloClient.create({ appId, configServer: server, bogus: 1 }), (e) => e instanceof TypeError, 'unknown option');
  check('unknown option is a TypeError naming it', /bogus/.test(te.message));
  const te2 = await rejects(ApolloClient.create({ appId, configServer: 'ftp://x' }), (e) => e instanceof TypeError, 'bad url');
  check('bad server URL is a TypeError naming the option', /configServer/.test(te2.message));
  // The engine judges names and knobs; its verdicts are the same TypeErrors.
  const te3 = await rejects(ApolloClient.create({ appId, configServer: server, namespaces: ['a', 'a'] }), (e) => e instanceof TypeError, 'duplicate namespace');
  check('a duplicate namespace is a TypeError naming the option', /namespaces/.test(te3.message));
  const te4 = await rejects(ApolloClient.create({ appId, configServer: server, timing: { bogusMs: 1 } }), (e) => e instanceof TypeError, 'unknown timing knob');
  check('an unknown timing knob is a TypeError naming it', /timing/.test(te4.message) && /bogusMs/.test(te4.message));
  const te5 = await rejects(ApolloClient.create({ appId: ' ', configServer: server }), (e) => e instanceof TypeError, 'blank app id');
  check('a blank appId is a TypeError naming the option', /appId/.test(te5.message));

  // Start-up errors are ApolloErrors with a code.
  const nf = await rejects(ApolloClient.create({ appId: `${appId}-missing`, configServer: server, cache: false, timing: fast }),
    (e) => e instanceof ApolloError, 'missing app');
  check('a missing app rejects with NOT_FOUND', nf.code === 'NOT_FOUND', nf.code);
  const down = await rejects(ApolloClient.create({ appId, configServer: CLOSED_PORT_URL, cache: false, timing: fast }),
    (e) => e instanceof ApolloError, 'server down');
  check('a server that is down rejects with NETWORK', down.code === 'NETWORK', down.code);

  // Access keys: requests are signed (custom headers: a CORS preflight in browsers).
  const secureApp = `${appId}-secure`;
  await publish(server, secureApp, 'application', { secret: 'ok' });
  await admin(server, 'POST', `apps/${secureApp}/accesskeys`, { secret: 'the-secret-0123456789' });
  const unauth = await rejects(ApolloClient.create({ appId: secureApp, configServer: server, cache: false, timing: fast, secret: 'wrong' }),
    (e) => e instanceof ApolloError, 'wrong secret');
  check('a wrong secret rejects with UNAUTHORIZED', unauth.code === 'UNAUTHORIZED', unauth.code);
  const secure = await within(10_000, ApolloClient.create({ appId: secureApp, configServer: server, cache: false, timing: fast, secret: 'the-secret-0123456789' }), 'signed create');
  check('signed requests with the right secret', secure.get('secret') === 'ok');
  await secure.close();

  // Discovery through a meta server (the test server is its own meta server).
  const viaMeta = await within(10_000, ApolloClient.create({ appId, metaServer: server, cache: false, timing: fast, mode: 'background' }), 'create via meta server');
  const dm = viaMeta.metrics();
  check('discovery through the meta server', viaMeta.get('greeting') === 'hello' && dm.discovery.ok >= 1 && dm.services.length >= 1, JSON.stringify(dm.services));
  await viaMeta.close();

  // YAML support is a WebAssembly module of its own, loaded only when a YAML namespace is
  // used: not by any client so far, and for a YAML namespace watched after start (whose
  // answer waits for it), which then flattens as one configured at start.
  check('no YAML module without a YAML namespace', wasm.yaml === 0 && wasm.engine === 1, JSON.stringify(wasm));
  const late = await within(10_000, ApolloClient.create({ appId, configServer: server, cache: false, timing: fast, mode: 'background' }), 'create without YAML');
  await within(10_000, late.watch('app.yaml'), 'watch of a YAML namespace');
  await within(10_000, until(() => late.namespace('app.yaml').status === 'loaded'), 'the values of a YAML namespace watched after start');
  const lateYaml = late.namespace('app.yaml').toObject();
  check('a YAML namespace watched after start is flattened', lateYaml['server.port'] === '8080' && lateYaml['list[1]'] === 'b' &&
    late.get('list[0]') === 'a' && Object.keys(lateYaml).length === 3, JSON.stringify(lateYaml));
  check('the YAML module is loaded when a YAML namespace is watched', wasm.yaml === 1, JSON.stringify(wasm));
  await within(5_000, late.close(), 'close');

  // Start and read.
  const client = await within(10_000, ApolloClient.create({
    appId, configServer: server, namespaces: ['application', 'settings.json', 'app.yaml'], cache, timing: fast, mode: 'background',
  }), 'create');
  check('YAML namespaces are flattened', client.namespace('app.yaml').get('server.port') === '8080' &&
    client.get('list[1]') === 'b' && client.namespace('app.yaml').content.startsWith('server:'));
  check('YAML configured at start flattens as YAML watched later', JSON.stringify(client.namespace('app.yaml').toObject()) === JSON.stringify(lateYaml) && wasm.yaml === 1,
    JSON.stringify(client.namespace('app.yaml').toObject()));
  check('get', client.get('greeting') === 'hello');
  check('get with default', client.get('nope', 'dflt') === 'dflt' && client.get('nope') === undefined);
  check('getNumber', client.getNumber('timeout.ms') === 1500 && client.getNumber('greeting', 7) === 7);
  check('getBoolean', client.getBoolean('feature.on') === true && client.getBoolean('nope', false) === false);
  check('getJSON', client.getJSON('json.val')?.a?.[1] === 2);
  const settings = client.namespace('settings.json');
  check('content of a non-properties namespace', settings.content === '{"x":1}', String(settings.content));
  check('namespace reads', client.namespace('application').get('db.pool') === '8' && client.namespace('application').source === 'server');
  check('release key', typeof client.namespace('application').releaseKey === 'string');
  let unknown;
  try { client.namespace('other'); } catch (e) { unknown = e; }
  check('an unconfigured namespace is NOT_FOUND', unknown instanceof ApolloError && unknown.code === 'NOT_FOUND');

  // Changes: a key listener, a prefix listener that must not fire, and the async iterator.
  const seen = [];
  const prefixHits = [];
  let valueInListener;
  const gotChange = new Promise((resolve) => {
    client.on('change', (ev) => {
      seen.push(ev);
      valueInListener = client.get('greeting');
      resolve(ev);
    }, { keys: ['greeting'] });
  });
  client.on('change', (ev) => prefixHits.push(ev), { prefixes: ['db.'] });
  const iter = client.changes({ namespace: 'application' });
  const firstFromIter = iter.next();
  await publish(server, appId, 'application', {
    greeting: 'hi', 'timeout.ms': '1500', 'feature.on': 'TRUE', 'json.val': '{"a":[1,2]}', 'db.url': 'jdbc:x', 'db.pool': '8', added: 'yes',
  });
  const ev = await within(15_000, gotChange, 'a change event');
  check('change event after publish', ev.namespace === 'application' && ev.changes.length === 1 && ev.changes[0].key === 'greeting');
  check('change carries old and new values', ev.changes[0].oldValue === 'hello' && ev.changes[0].newValue === 'hi' && ev.changes[0].type === 'MODIFIED');
  check('snapshot is updated before listeners run', valueInListener === 'hi' && client.get('added') === 'yes');
  check('prefix interest filters events', prefixHits.length === 0);
  const it1 = await within(5_000, firstFromIter, 'the iterator');
  check('async iterator yields the change', !it1.done && it1.value.changes.length === 2);

  const m = client.metrics();
  check('metrics count requests', m.configs.ok >= 2 && m.notifications.sent >= 1, JSON.stringify(m.configs));

  const pendingIter = iter.next();
  await within(5_000, client.close(), 'close');
  check('close ends the iterator', (await within(2_000, pendingIter, 'iterator end')).done === true);
  check('reads and metrics still work after close', client.get('greeting') === 'hi' && client.closed === true && client.metrics().configs.ok >= 2);

  // The cache: a second client whose server is down serves the cached values.
  if (cache !== false && cache !== undefined) {
    const cached = await within(10_000, ApolloClient.create({
      appId, configServer: CLOSED_PORT_URL, namespaces: ['application', 'settings.json'], cache, timing: fast, mode: 'background',
    }), 'create from cache');
    check('values from the cache when the server is down', cached.get('greeting') === 'hi' && cached.namespace('application').source === 'cache');
    check('cached non-properties content', cached.namespace('settings.json').content === '{"x":1}');
    await within(5_000, cached.watch('app.yaml'), 'watch of a cached YAML namespace');
    check('a YAML namespace watched later serves its cache file, flattened', cached.namespace('app.yaml').get('server.port') === '8080' &&
      cached.namespace('app.yaml').source === 'cache', JSON.stringify(cached.namespace('app.yaml').toObject()));
    await within(5_000, cached.close(), 'close of cached client');
  }

  // Edge mode: no long poll, nothing in the background; refresh({ maxAgeMs }) checks.
  const edge = await within(10_000, ApolloClient.create({ appId, configServer: server, cache: false, mode: 'edge', timing: fast }), 'edge create');
  check('edge mode: values at start', edge.get('greeting') === 'hi' && edge.mode === 'edge');
  const sent0 = edge.metrics().configs.sent;
  let fresh = 0;
  for (let i = 0; i < 100; i++) fresh += await edge.refresh({ maxAgeMs: 60_000 });
  check('edge mode: 100 refreshes within maxAge send nothing', fresh === 0 && edge.metrics().configs.sent === sent0);
  const edgeChange = new Promise((resolve) => edge.on('change', resolve));
  await publish(server, appId, 'application', { greeting: 'edge' });
  const n = await within(10_000, edge.refresh({ maxAgeMs: 0 }), 'edge refresh');
  check('edge mode: refresh() sees a publish', n === 1 && edge.get('greeting') === 'edge', `${n} ${edge.get('greeting')}`);
  check('edge mode: the change event came before refresh() resolved', (await within(100, edgeChange, 'edge change')).changes.length >= 1);
  const same = await within(10_000, edge.refresh({ maxAgeMs: 0 }), 'edge refresh 304');
  const em = edge.metrics();
  check('edge mode: an unchanged namespace costs a 304', same === 1 && em.configs.notModified >= 1, JSON.stringify(em.configs));
  check('edge mode: no long poll', em.notifications.sent === 0);
  await within(5_000, edge.close(), 'edge close');
  return { runtime, checks: checks.length, appId };
}
