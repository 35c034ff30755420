// A conformance subject (tests/conformance/README.md): the packed package inside one runtime,
// running conformance-agent.mjs, driven by the runner over stdin/stdout.
//
//   node pkg/test/conformance-subject.mjs <node|deno|browser|workerd> --tarball T
//
// The runner starts one of these per `start` step. The tarball is installed once per
// (tarball, agent) into a shared temp project (reused by every later subject); then:
// - node, deno: the runtime runs the agent with the runner's stdin/stdout as its own, the
//   cache is the Java file cache under `cacheDir`; the process must end by itself after close.
// - browser: one headless Chromium page per subject (a fresh profile); the cache is
//   localStorage. A profile does not outlive the process, so this relay keeps the page's
//   localStorage in `{cacheDir}/.apolloconf-localStorage.json` between subjects of a run
//   (what a persistent browser profile would do).
// - workerd: a worker that accepts one WebSocket per session; the cache is a
//   `{ get, set }` store (like a KV namespace) that this relay keeps in
//   `{cacheDir}/.apolloconf-store.json` between subjects of a run.
// The process exits after the close reply (or when stdin ends).

import { spawn, execFileSync } from 'node:child_process';
import { createServer } from 'node:http';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { readFileSync, writeFileSync, existsSync, mkdtempSync, mkdirSync, renameSync, rmSync, copyFileSync, openSync, closeSync, statSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { tmpdir } from 'node:os';
import { join, extname, normalize } from 'node:path';
import { freePort, toolBin, here } from './lib.mjs';

const args = process.argv.slice(2);
const runtime = args[0];
const tarball = args[args.indexOf('--tarball') + 1];
if (runtime !== 'browser-server' && (!['node', 'deno', 'browser', 'workerd'].includes(runtime) || args.indexOf('--tarball') < 0)) {
  console.error('usage: conformance-subject.mjs <node|deno|browser|workerd> --tarball T');
  process.exit(2);
}

const STDIO_MAIN = `import process from 'node:process';
import { createInterface } from 'node:readline';
import { ApolloClient } from 'apolloconf';
import { createConformanceAgent } from './conformance-agent.mjs';
const rl = createInterface({ input: process.stdin });
const handle = createConformanceAgent({
  ApolloClient,
  emit: (l) => process.stdout.write(l + '\\n'),
  cacheFor: (dir) => ({ dir }),
  // Stop reading: nothing of the agent is left, so the process ends once the client has
  // released everything (that is what the runner checks).
  onClosed: () => { rl.close(); process.stdin.destroy(); },
});
let chain = Promise.resolve();
rl.on('line', (l) => { if (l.trim() !== '') chain = chain.then(() => handle(l)); });
rl.on('close', () => {
  chain = chain.then(() => handle('{"cmd":"close"}'));
  // Never outlive the runner by more than a moment, even if close() were stuck (the runner
  // has judged the exit by then). Unreferenced: it does not keep the process alive itself.
  setTimeout(() => process.exit(3), 5000).unref();
});
`;

const PAGE = (entry) => `<!doctype html><meta charset="utf-8">
<script type="importmap">${JSON.stringify({ imports: { apolloconf: entry } })}</script>
<script type="module">
import { ApolloClient } from 'apolloconf';
import { createConformanceAgent } from './conformance-agent.mjs';
const handle = createConformanceAgent({ ApolloClient, emit: (l) => window.__emit(l), cacheFor: () => 'localStorage' });
let chain = Promise.resolve();
window.__handle = (l) => { chain = chain.then(() => handle(l)); return true; };
window.__agentReady = true;
</script>`;

const WORKER = (entry) => `import { ApolloClient } from ${JSON.stringify(entry)};
import { createConformanceAgent } from './conformance-agent.mjs';
// One WebSocket is one session (the client's I/O belongs to the request that accepted it).
// The cache is a store per session, seeded by the relay (the "store" field of start) and
// mirrored to it ("store-set" events).
export default {
  async fetch(request) {
    if (request.headers.get('upgrade') !== 'websocket') return new Response('websocket only', { status: 426 });
    const [clientSide, serverSide] = Object.values(new WebSocketPair());
    serverSide.accept();
    const emit = (l) => serverSide.send(l);
    const data = new Map();
    const store = {
      get: (k) => data.get(k),
      set: (k, v) => { data.set(k, v); emit(JSON.stringify({ event: 'store-set', key: k, value: v })); },
    };
    const handle = createConformanceAgent({ ApolloClient, emit, cacheFor: () => store });
    let chain = Promise.resolve();
    serverSide.addEventListener('message', (ev) => {
      const line = String(ev.data);
      try {
        const cmd = JSON.parse(line);
        if (cmd.cmd === 'start' && cmd.store) for (const [k, v] of Object.entries(cmd.store)) data.set(k, v);
      } catch { /* the agent answers bad lines */ }
      chain = chain.then(() => handle(line));
    });
    serverSide.addEventListener('close', () => { chain = chain.then(() => handle('{"cmd":"close"}')); });
    return new Response(null, { status: 101, webSocket: clientSide });
  },
};
`;

/** The temp project with the tarball installed, shared by every subject of that tarball. */
function sharedProject() {
  const h = createHash('sha256');
  h.update(readFileSync(tarball));
  h.update(readFileSync(join(here, 'conformance-agent.mjs')));
  h.update(readFileSync(new URL(import.meta.url)));
  const dir = join(tmpdir(), `apolloconf-conformance-${runtime}-${h.digest('hex').slice(0, 16)}`);
  if (existsSync(join(dir, '.ready'))) return dir;
  // Built aside and renamed into place, so subjects started at once never see half of it.
  const work = mkdtempSync(`${dir}.tmp-`);
  writeFileSync(join(work, 'package.json'), JSON.stringify({ name: `apolloconf-conformance-${runtime}`, private: true, type: 'module' }));
  execFileSync('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error', '--offline', tarball], { cwd: work, stdio: ['ignore', 2, 2] });
  copyFileSync(join(here, 'conformance-agent.mjs'), join(work, 'conformance-agent.mjs'));
  const pj = JSON.parse(readFileSync(join(work, 'node_modules', 'apolloconf', 'package.json'), 'utf8'));
  const entry = (cond) => `./node_modules/apolloconf/${pj.exports['.'][cond].replace(/^\.\//, '')}`;
  writeFileSync(join(work, 'main.mjs'), STDIO_MAIN);
  writeFileSync(join(work, 'deno.json'), JSON.stringify({ nodeModulesDir: 'manual' }));
  writeFileSync(join(work, 'index.html'), PAGE(entry('browser')));
  writeFileSync(join(work, 'worker.mjs'), WORKER(entry('workerd')));
  writeFileSync(join(work, '.ready'), '');
  try {
    renameSync(work, dir);
  } catch {
    rmSync(work, { recursive: true, force: true }); // another subject was first
  }
  return dir;
}

const out = (line) => process.stdout.write(`${line}\n`);

/** Runs `onLine` for each stdin line in order (awaiting each), then `onEnd`. */
function relayStdin(onLine, onEnd) {
  let chain = Promise.resolve();
  const rl = createInterface({ input: process.stdin });
  rl.on('line', (l) => { if (l.trim() !== '') chain = chain.then(() => onLine(l)).catch((e) => console.error(e)); });
  rl.on('close', () => { chain = chain.then(onEnd).catch((e) => console.error(e)); });
  return rl;
}

function readJson(path) {
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch {
    return {};
  }
}

function writeJson(path, value) {
  try {
    writeFileSync(path, JSON.stringify(value));
  } catch {
    // An unwritable cacheDir (a scenario's point) keeps the store in memory only.
  }
}

function parse(line) {
  try {
    return JSON.parse(line);
  } catch {
    return null;
  }
}

async function stdio(dir) {
  const [bin, argv] = runtime === 'node'
    ? [process.execPath, ['main.mjs']]
    : [toolBin('deno'), ['run', '--allow-net=127.0.0.1', '--allow-read', '--allow-write', 'main.mjs']];
  const child = spawn(bin, argv, {
    cwd: dir,
    stdio: 'inherit',
    env: { ...process.env, DENO_NO_UPDATE_CHECK: '1', NO_COLOR: '1' },
  });
  child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
  for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => child.kill('SIGKILL'));
}

const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.mjs': 'text/javascript', '.wasm': 'application/wasm', '.json': 'application/json' };

async function browser(dir) {
  const http = createServer(async (req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url, 'http://x').pathname)).replace(/^(\.\.[/\\])+/, '');
    try {
      const body = await readFile(join(dir, path === '/' ? 'index.html' : path));
      res.writeHead(200, { 'content-type': TYPES[extname(path)] ?? 'application/octet-stream' }).end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  const port = await freePort();
  await new Promise((r) => http.listen(port, '127.0.0.1', r));
  const { chromium } = await import(join(here, '..', 'test-env', 'node_modules', 'playwright-core', 'index.mjs'));
  const b = await sharedBrowser(chromium);
  const context = await b.newContext(); // a fresh profile: nothing shared with other subjects
  const page = await context.newPage();
  page.on('console', (m) => process.stderr.write(`[browser] ${m.text()}\n`));
  let storeFile = null;
  let closeId;
  let finish;
  const finished = new Promise((r) => { finish = r; });
  await page.exposeFunction('__emit', async (l) => {
    if (closeId !== undefined && parse(l)?.id === closeId) {
      if (storeFile) {
        const ls = await page.evaluate(() => Object.fromEntries(Object.entries(localStorage)));
        writeJson(storeFile, ls);
      }
      out(l);
      finish();
      return;
    }
    out(l);
  });
  await page.goto(`http://127.0.0.1:${port}/index.html`);
  await page.waitForFunction(() => window.__agentReady === true, null, { timeout: 30_000 });
  const end = async () => {
    await context.close().catch(() => {});
    await b.close().catch(() => {}); // disconnects; the shared browser stays
    http.close();
    process.exit(0);
  };
  const rl = relayStdin(async (l) => {
    const cmd = parse(l);
    if (cmd?.cmd === 'start' && typeof cmd.options?.cacheDir === 'string') {
      storeFile = join(cmd.options.cacheDir, '.apolloconf-localStorage.json');
      const seed = readJson(storeFile);
      await page.evaluate((s) => { for (const [k, v] of Object.entries(s)) localStorage.setItem(k, v); }, seed);
    }
    if (cmd?.cmd === 'close') closeId = cmd.id;
    await page.evaluate((line) => window.__handle(line), l);
    if (cmd?.cmd === 'close') {
      await finished;
      rl.close();
      await end();
    }
  }, async () => {
    closeId = -1;
    await page.evaluate(() => window.__handle('{"id":-1,"cmd":"close"}')).catch(() => {});
    await Promise.race([finished, new Promise((r) => setTimeout(r, 1000))]);
    await end();
  });
}

// ------------------------------------------------------------------ the shared Chromium
// Launching Chromium takes seconds on a small machine, and the runner starts a subject per
// `start` step: every browser subject of a user connects to one Chromium (a browser server
// started by the first subject, detached) and works in its own context. The server stops
// by itself once no subject has used it for BROWSER_IDLE_MS.

const BROWSER_DIR = join(tmpdir(), `apolloconf-conformance-browser-${process.getuid?.() ?? 0}`);
const ENDPOINT = join(BROWSER_DIR, 'endpoint');
const LOCK = join(BROWSER_DIR, 'lock');
const HEARTBEAT = join(BROWSER_DIR, 'heartbeat');
const BROWSER_IDLE_MS = 15_000;
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic',
  '--disable-extensions', '--disable-dev-shm-usage'];

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
// The heartbeat is the file's mtime (reading its content could race a writer).
const beat = () => { try { writeFileSync(HEARTBEAT, ''); } catch { /* next time */ } };

async function sharedBrowser(chromium) {
  mkdirSync(BROWSER_DIR, { recursive: true });
  beat();
  setInterval(beat, 1000).unref();
  for (let i = 0; i < 600; i++) {
    let ep;
    try { ep = readFileSync(ENDPOINT, 'utf8').trim(); } catch { /* not yet */ }
    if (ep) {
      try {
        return await chromium.connect(ep, { timeout: 10_000 });
      } catch (e) {
        console.error(`shared browser at ${ep} did not answer (${e.message}); starting another`);
        rmSync(ENDPOINT, { force: true });
        rmSync(LOCK, { force: true });
      }
    }
    try {
      closeSync(openSync(LOCK, 'wx')); // whoever creates the lock starts the server
      const log = openSync(join(BROWSER_DIR, 'server.log'), 'a');
      spawn(process.execPath, [new URL(import.meta.url).pathname, 'browser-server'], { detached: true, stdio: ['ignore', log, log] }).unref();
    } catch { /* another subject is starting it */ }
    await sleep(50);
  }
  throw new Error('no shared browser within 30 s');
}

async function browserServer() {
  const { chromium } = await import(join(here, '..', 'test-env', 'node_modules', 'playwright-core', 'index.mjs'));
  const server = await chromium.launchServer({ executablePath: '/usr/bin/chromium', headless: true, args: CHROMIUM_ARGS });
  writeFileSync(`${ENDPOINT}.tmp`, server.wsEndpoint());
  renameSync(`${ENDPOINT}.tmp`, ENDPOINT);
  const stop = async () => {
    rmSync(ENDPOINT, { force: true });
    rmSync(LOCK, { force: true });
    await server.close().catch(() => {});
    process.exit(0);
  };
  for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, stop);
  for (;;) {
    await sleep(1000);
    let last = 0;
    try { last = statSync(HEARTBEAT).mtimeMs; } catch { /* none */ }
    if (Date.now() - last > BROWSER_IDLE_MS) await stop();
  }
}

async function workerd(dir) {
  const pkgRoot = 'node_modules/apolloconf';
  const port = await freePort();
  // A config per subject (its own port) next to the shared project's files (embed paths
  // are relative to the config file).
  const mod = (name) => `(name = "${name}", esModule = embed "${name}")`;
  const config = join(dir, `config-${process.pid}-${port}.capnp`);
  writeFileSync(config, `using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [
    (name = "main", worker = .mainWorker),
    (name = "loopback-net", network = (allow = ["public", "private", "local"])),
  ],
  sockets = [ (name = "http", address = "127.0.0.1:${port}", http = (), service = "main") ],
);
const mainWorker :Workerd.Worker = (
  modules = [
    ${mod('worker.mjs')}, ${mod('conformance-agent.mjs')},
    ${mod(`${pkgRoot}/src/workerd.js`)}, ${mod(`${pkgRoot}/src/client.js`)}, ${mod(`${pkgRoot}/dist/apolloconf_wasm.js`)},
    (name = "${pkgRoot}/dist/apolloconf_wasm_bg.wasm", wasm = embed "${pkgRoot}/dist/apolloconf_wasm_bg.wasm"),
  ],
  compatibilityDate = "2025-09-01",
  globalOutbound = "loopback-net",
);
`);
  const child = spawn(toolBin('workerd'), ['serve', config], { cwd: dir, stdio: ['ignore', 2, 'inherit'] });
  const kill = () => {
    try { child.kill('SIGKILL'); } catch { /* gone */ }
    rmSync(config, { force: true });
  };
  process.on('exit', kill);
  let ws;
  for (let i = 0; i < 200 && !ws; i++) {
    ws = await new Promise((resolve) => {
      const s = new WebSocket(`ws://127.0.0.1:${port}/`);
      s.onopen = () => resolve(s);
      s.onerror = () => resolve(undefined);
    });
    if (!ws) await new Promise((r) => setTimeout(r, 25));
  }
  if (!ws) {
    console.error('workerd subject: could not connect');
    process.exit(1);
  }
  let storeFile = null;
  let store = {};
  let closeId;
  const end = () => { ws.close(); kill(); process.exit(0); };
  ws.onmessage = (ev) => {
    const l = String(ev.data);
    const m = parse(l);
    if (m?.event === 'store-set') {
      store[m.key] = m.value;
      if (storeFile) writeJson(storeFile, store);
      return;
    }
    out(l);
    if (closeId !== undefined && m?.id === closeId) end();
  };
  ws.onclose = () => { kill(); process.exit(closeId !== undefined ? 0 : 1); };
  relayStdin((l) => {
    const cmd = parse(l);
    if (cmd?.cmd === 'start' && typeof cmd.options?.cacheDir === 'string') {
      storeFile = join(cmd.options.cacheDir, '.apolloconf-store.json');
      store = readJson(storeFile);
      ws.send(JSON.stringify({ ...cmd, store }));
      return;
    }
    if (cmd?.cmd === 'close') closeId = cmd.id;
    ws.send(l);
  }, () => {
    closeId = -1;
    ws.send('{"id":-1,"cmd":"close"}');
    setTimeout(end, 1000);
  });
}

async function main() {
  const dir = sharedProject();
  if (runtime === 'node' || runtime === 'deno') return stdio(dir);
  if (runtime === 'browser') return browser(dir);
  return workerd(dir);
}

// Node 20 has a WebSocket client only behind a flag (workerd is reached through one).
if (runtime === 'workerd' && typeof globalThis.WebSocket !== 'function') {
  const child = spawn(process.execPath, ['--experimental-websocket', '--no-warnings', ...process.argv.slice(1)], { stdio: 'inherit' });
  child.on('exit', (code) => process.exit(code ?? 1));
} else if (runtime === 'browser-server') {
  await browserServer();
} else {
  await main();
}
