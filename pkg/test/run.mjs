// Runtime tests of the packed package.
//
//   node pkg/test/run.mjs <node|deno|browser|workerd|types> --tarball T --server BIN
//
// Each runtime test installs the tarball into a fresh temp project, starts the test
// server, runs scenario.mjs inside the runtime (create, read, change after a publish,
// close, cache round trip) and checks that the runtime's process exits by itself after
// close() (Node, Deno). Then it drives the runtime through subject.mjs, the adapter a
// conformance runner uses. Exit status 0 on success.

import { writeFileSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { subjectSmoke } from './subject-smoke.mjs';
import { publish, admin } from './scenario.mjs';
import { project, startServer, runLimited, resultOf, entryFor, freePort, toolBin, here } from './lib.mjs';

const args = process.argv.slice(2);
const runtime = args[0];
const opt = (name) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const tarball = opt('--tarball');
const serverBin = opt('--server');
if (!runtime || !tarball || (!serverBin && runtime !== 'types')) {
  console.error('usage: run.mjs <node|deno|browser|workerd|types> --tarball T --server BIN');
  process.exit(2);
}

const EXIT_GRACE_MS = 2_000;

function judge(name, r) {
  const result = resultOf(r.stdout);
  if (r.code !== 0 || !result) {
    console.error(`${name}: FAILED (exit ${r.code ?? r.signal})`);
    return false;
  }
  if (r.exitedAfterMs !== undefined && r.exitedAfterMs > EXIT_GRACE_MS) {
    console.error(`${name}: the process lingered ${r.exitedAfterMs} ms after close()`);
    return false;
  }
  console.log(`${name}: ${result.checks} checks passed; exited ${r.exitedAfterMs ?? '?'} ms after close()`);
  return true;
}

const scriptHead = (entry) => `import { ApolloClient, ApolloError } from ${JSON.stringify(entry)};
import { run } from './scenario.mjs';
`;

// The file cache's trust rules (cache-trust.mjs), run by `cmd args… SERVER DEAD_SERVER` in
// the project folder.
async function trust(name, dir, server, cmd, args, env) {
  writeFileSync(join(dir, 'trust.mjs'), `import { ApolloClient } from 'apolloconf';
import { cacheTrust } from './cache-trust.mjs';
import { publish } from './scenario.mjs';
import process from 'node:process';
const [server, dead] = process.argv.slice(2);
await publish(server, 'TrustApp', 'application', { k: 'from-server' });
const checks = await cacheTrust({ ApolloClient, dir: process.cwd(), server, deadServer: dead, log: console.log });
console.log('RESULT ' + JSON.stringify({ checks }));
`);
  const dead = `http://127.0.0.1:${await freePort()}`;
  const r = await runLimited(cmd, [...args, server.url, dead], { cwd: dir, env, timeoutMs: 60_000 });
  const result = resultOf(r.stdout);
  if (r.code !== 0 || !result) {
    console.error(`${name} (cache trust): FAILED (exit ${r.code ?? r.signal})`);
    return false;
  }
  console.log(`${name} (cache trust): ${result.checks} checks passed`);
  return true;
}

async function testNode(server) {
  const dir = project(tarball, 'node');
  writeFileSync(join(dir, 'test.mjs'), `${scriptHead('apolloconf')}
const [server, cacheDir] = process.argv.slice(2);
if (!import.meta.resolve('apolloconf').endsWith('/src/node.js')) throw new Error('the node condition was not used: ' + import.meta.resolve('apolloconf'));
const r = await run({ ApolloClient, ApolloError, server, runtime: 'node', cache: { dir: cacheDir }, log: console.log });
console.log('RESULT ' + JSON.stringify(r));
`);
  const r = await runLimited(process.execPath, ['test.mjs', server.url, join(dir, 'cache')], { cwd: dir });
  if (!judge('node', r)) return false;
  // The cache directory has the Java layout: {root}/{appId}/config-cache/{appId}+default+{ns}.properties
  const { appId } = resultOf(r.stdout);
  const file = join(dir, 'cache', appId, 'config-cache', `${appId}+default+application.properties`);
  const text = readFileSync(file, 'latin1');
  if (!text.includes('greeting=hi')) {
    console.error(`node: cache file ${file} lacks greeting=hi:\n${text}`);
    return false;
  }
  console.log(`node: Java-layout cache file written (${file})`);
  if (!(await trust('node', dir, server, process.execPath, ['trust.mjs']))) return false;
  // CommonJS: require() of the ESM entry (Node >= 20.19 / 22.12 load ESM without top-level await).
  // Older Node cannot require() an ES module at all (ERR_REQUIRE_ESM), as the README says.
  const [major, minor] = process.versions.node.split('.').map(Number);
  if (!(major > 22 || (major === 22 && minor >= 12) || (major === 20 && minor >= 19))) {
    console.log(`node (require): not checked on Node ${process.versions.node}: require() of ES modules needs 20.19+ or 22.12+`);
    return true;
  }
  writeFileSync(join(dir, 'test.cjs'), `const { ApolloClient } = require('apolloconf');
(async () => {
  const [server, appId] = process.argv.slice(2);
  const client = await ApolloClient.create({ appId, configServer: server, cache: false, mode: 'background', startupTimeoutMs: Infinity });
  const value = client.get('greeting');
  await client.close();
  console.log('RESULT ' + JSON.stringify({ checks: 1, value }));
})();
`);
  const c = await runLimited(process.execPath, ['test.cjs', server.url, appId], { cwd: dir, timeoutMs: 30_000 });
  if (!judge('node (require)', c) || resultOf(c.stdout).value !== 'edge') return false;
  return true;
}

async function testDeno(server) {
  const dir = project(tarball, 'deno');
  writeFileSync(join(dir, 'deno.json'), JSON.stringify({ nodeModulesDir: 'manual' }));
  mkdirSync(join(dir, 'cache'));
  writeFileSync(join(dir, 'test.mjs'), `${scriptHead('apolloconf')}
const [server] = Deno.args;
if (!import.meta.resolve('apolloconf').endsWith('/src/deno.js')) throw new Error('the deno condition was not used: ' + import.meta.resolve('apolloconf'));
const r = await run({ ApolloClient, ApolloError, server, runtime: 'deno', cache: { dir: './cache' }, log: console.log });
console.log('RESULT ' + JSON.stringify(r));
`);
  const env = { DENO_NO_UPDATE_CHECK: '1', NO_COLOR: '1' };
  const r = await runLimited(toolBin('deno'), ['run', '--allow-net=127.0.0.1', '--allow-read=.', '--allow-write=./cache', 'test.mjs', server.url],
    { cwd: dir, env });
  if (!judge('deno', r)) return false;
  return trust('deno', dir, server, toolBin('deno'),
    // Unscoped read and write: Deno grants symlinkSync (a planted link) only so.
    ['run', '--allow-net=127.0.0.1', '--allow-read', '--allow-write', '--allow-env', '--allow-sys', 'trust.mjs'], env);
}

async function testBrowser(server, serverBin) {
  const dir = project(tarball, 'browser');
  const entry = entryFor(dir, 'browser');
  writeFileSync(join(dir, 'index.html'), `<!doctype html>
<meta charset="utf-8"><title>apolloconf browser test</title>
<script type="importmap">${JSON.stringify({ imports: { apolloconf: entry } })}</script>
<script type="module">
${scriptHead('apolloconf')}
const server = new URL(location.href).searchParams.get('server');
localStorage.clear();
run({ ApolloClient, ApolloError, server, runtime: 'browser', cache: 'localStorage', log: (m) => console.log(m) })
  .then((r) => { window.__result = { ok: true, r }; }, (e) => { window.__result = { ok: false, error: String(e?.stack ?? e) }; });
</script>
`);
  // A second server instance serves the page: the API is cross-origin, as in production.
  const pages = await startServer(serverBin, ['--static', dir]);
  const { chromium } = await import(join(here, '..', 'test-env', 'node_modules', 'playwright-core', 'index.mjs'));
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
  });
  try {
    const page = await browser.newPage();
    page.on('console', (m) => console.log(`[browser] ${m.text()}`));
    page.on('pageerror', (e) => console.log(`[browser error] ${e}`));
    // The admin API refuses pages of other origins: the page publishes through Node.
    await page.exposeFunction('__apolloconfAdmin', admin);
    await page.goto(`${pages.url}/__static/index.html?server=${encodeURIComponent(server.url)}`);
    await page.waitForFunction(() => window.__result !== undefined, null, { timeout: 60_000 });
    const res = await page.evaluate(() => window.__result);
    if (!res.ok) {
      console.error(`browser: FAILED ${res.error}`);
      return false;
    }
    const keys = await page.evaluate(() => Object.keys(localStorage).filter((k) => k.startsWith('apolloconf:')).length);
    console.log(`browser: ${res.r.checks} checks passed; ${keys} cache entries in localStorage`);
    return keys >= 2;
  } finally {
    await browser.close();
    pages.stop();
  }
}

async function testWorkerd(server) {
  const dir = project(tarball, 'workerd');
  const entry = entryFor(dir, 'workerd');
  const pkgRoot = 'node_modules/apolloconf';
  writeFileSync(join(dir, 'worker.mjs'), `${scriptHead(entry)}
// A user-supplied { get, set } store (a stand-in for Workers KV).
const store = new Map();
const cache = { get: async (k) => store.get(k), set: async (k, v) => { store.set(k, v); } };
// Edge mode across requests: one client in module scope, refresh() at the top of each request.
let edgeClient;
async function edge(url) {
  const q = url.searchParams;
  edgeClient ??= await ApolloClient.create({ appId: q.get('app'), configServer: q.get('server'), cache: false });
  const checked = await edgeClient.refresh({ maxAgeMs: Number(q.get('maxAge')) });
  const m = edgeClient.metrics();
  return Response.json({ value: edgeClient.get('k') ?? null, checked, sent: m.configs.sent, notModified: m.configs.notModified, polls: m.notifications.sent, mode: edgeClient.mode });
}
export default {
  async fetch(request) {
    const url = new URL(request.url);
    if (url.pathname === '/edge') return edge(url);
    const server = url.searchParams.get('server');
    try {
      const r = await run({ ApolloClient, ApolloError, server, runtime: 'workerd', cache, log: (m) => console.log(m) });
      return Response.json({ ok: true, r, cacheEntries: store.size });
    } catch (e) {
      return Response.json({ ok: false, error: String(e?.stack ?? e) }, { status: 500 });
    }
  },
};
`);
  const port = await freePort();
  const mod = (name) => `(name = "${name}", esModule = embed "${name}")`;
  writeFileSync(join(dir, 'config.capnp'), `using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [
    (name = "main", worker = .mainWorker),
    # workerd blocks loopback by default; the test server is on 127.0.0.1.
    (name = "loopback-net", network = (allow = ["public", "private", "local"])),
  ],
  sockets = [ (name = "http", address = "127.0.0.1:${port}", http = (), service = "main") ],
);
const mainWorker :Workerd.Worker = (
  modules = [
    ${mod('worker.mjs')},
    ${mod('scenario.mjs')},
    ${mod(`${pkgRoot}/src/workerd.js`)},
    ${mod(`${pkgRoot}/src/client.js`)},
    ${mod(`${pkgRoot}/dist/apolloconf_wasm.js`)},
    (name = "${pkgRoot}/dist/apolloconf_wasm_bg.wasm", wasm = embed "${pkgRoot}/dist/apolloconf_wasm_bg.wasm"),
    ${mod(`${pkgRoot}/dist/apolloconf_yaml.js`)},
    (name = "${pkgRoot}/dist/apolloconf_yaml_bg.wasm", wasm = embed "${pkgRoot}/dist/apolloconf_yaml_bg.wasm"),
  ],
  compatibilityDate = "2025-09-01",
  globalOutbound = "loopback-net",
);
`);
  const { spawn } = await import('node:child_process');
  const child = spawn(toolBin('workerd'), ['serve', 'config.capnp'], { cwd: dir, stdio: ['ignore', 'inherit', 'inherit'] });
  try {
    let res;
    for (let i = 0; i < 100; i++) {
      try {
        res = await fetch(`http://127.0.0.1:${port}/?server=${encodeURIComponent(server.url)}`, { signal: AbortSignal.timeout(90_000) });
        break;
      } catch (e) {
        if (e?.name === 'TimeoutError') throw e;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    if (!res) {
      console.error('workerd: did not start');
      return false;
    }
    const body = await res.json();
    if (!body.ok) {
      console.error(`workerd: FAILED ${body.error}`);
      return false;
    }
    console.log(`workerd: ${body.r.checks} checks passed; ${body.cacheEntries} entries in the user store`);
    if (body.cacheEntries < 2) return false;
    return await workerdEdge(port, server);
  } finally {
    child.kill('SIGKILL'); // workerd drains open connections on SIGTERM
  }
}

// A module-scoped edge-mode client serving many worker requests: I/O happens only inside
// the request that calls refresh(), and at most one conditional request per maxAge.
async function workerdEdge(port, server) {
  const app = `edge-${Date.now().toString(36)}`;
  await publish(server.url, app, 'application', { k: 'v1' });
  const call = async (maxAge) => {
    const res = await fetch(`http://127.0.0.1:${port}/edge?app=${app}&maxAge=${maxAge}&server=${encodeURIComponent(server.url)}`, { signal: AbortSignal.timeout(30_000) });
    if (!res.ok) throw new Error(`edge request: ${res.status} ${await res.text()}`);
    return res.json();
  };
  const first = await call(60_000);
  const fail = (why, r) => { console.error(`workerd edge: ${why}: ${JSON.stringify(r)}`); return false; };
  if (first.value !== 'v1' || first.mode !== 'edge' || first.polls !== 0) return fail('first request', first);
  let last;
  for (let i = 0; i < 1000; i++) last = await call(60_000);
  if (last.sent !== first.sent || last.value !== 'v1') return fail('1000 requests within maxAge sent requests', last);
  await publish(server.url, app, 'application', { k: 'v2' });
  const after = await call(0);
  if (after.value !== 'v2' || after.sent !== first.sent + 1 || after.polls !== 0) return fail('publish not seen by the next refresh', after);
  const again = await call(0);
  if (again.notModified < 1) return fail('no 304 for an unchanged namespace', again);
  console.log(`workerd: edge mode across 1,003 worker requests: ${again.sent} /configs requests in all, ${again.notModified} answered 304, no long poll`);
  return true;
}

async function testTypes() {
  const dir = project(tarball, 'types');
  const { copyFileSync, readdirSync } = await import('node:fs');
  const exDir = join(here, '..', 'examples');
  for (const f of readdirSync(exDir)) if (f.endsWith('.ts')) copyFileSync(join(exDir, f), join(dir, f));
  writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({
    compilerOptions: {
      target: 'es2022', module: 'nodenext', moduleResolution: 'nodenext', strict: true, noEmit: true,
      skipLibCheck: false, lib: ['es2022', 'dom', 'esnext.disposable'], types: [],
    },
    include: ['*.ts'],
  }, null, 2));
  const r = await runLimited(toolBin('tsc'), ['--noEmit', '-p', '.'], { cwd: dir, marker: /$^/ });
  if (r.code !== 0) {
    console.error('types: tsc --noEmit FAILED');
    return false;
  }
  console.log('types: the examples type-check against the packed index.d.ts');
  return timingTypes(dir);
}

// `TimingOptions` in the packed index.d.ts lists exactly the engine's knob names
// (`Timing::NAMES`, exported as `timingNames()`), so the types cannot drift from the engine.
async function timingTypes(dir) {
  const pkg = join(dir, 'node_modules', 'apolloconf');
  const glue = await import(pathToFileURL(join(pkg, 'dist', 'apolloconf_wasm.js')).href);
  glue.initSync({ module: readFileSync(join(pkg, 'dist', 'apolloconf_wasm_bg.wasm')) });
  const engine = [...glue.timingNames()].sort();
  const dts = readFileSync(join(pkg, 'index.d.ts'), 'utf8');
  const body = /export interface TimingOptions \{([^}]*)\}/.exec(dts)?.[1] ?? '';
  const typed = [...body.matchAll(/^\s*(\w+)\?: number;/gm)].map((m) => m[1]).sort();
  if (engine.length === 0 || JSON.stringify(engine) !== JSON.stringify(typed)) {
    console.error(`types: TimingOptions in index.d.ts (${typed.join(', ')}) differs from the engine's timing names (${engine.join(', ')})`);
    return false;
  }
  console.log(`types: TimingOptions lists exactly the engine's ${engine.length} timing names`);
  return true;
}

let ok = false;
if (runtime === 'types') {
  ok = await testTypes();
} else {
  // A short hold: the long poll's 304-and-poll-again path runs several times per test.
  // The browser's page is on another origin: it needs the server's CORS extension.
  const server = await startServer(serverBin, ['--hold', '2s', ...(runtime === 'browser' ? ['--cors'] : [])]);
  try {
    if (runtime === 'node') ok = await testNode(server);
    else if (runtime === 'deno') ok = await testDeno(server);
    else if (runtime === 'browser') ok = await testBrowser(server, serverBin);
    else if (runtime === 'workerd') ok = await testWorkerd(server);
    else console.error(`unknown runtime ${runtime}`);
    // The same runtime as a conformance subject (subject.mjs, driven by JSON lines).
    if (ok) ok = await subjectSmoke(runtime, tarball, server.url);
  } catch (e) {
    console.error(`${runtime}: FAILED ${e?.stack ?? e}`);
  } finally {
    server.stop();
  }
}
process.exitCode = ok ? 0 : 1;
