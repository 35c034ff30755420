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
import { createServer as createNetServer, connect } from 'node:net';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { readFileSync, writeFileSync, existsSync, mkdtempSync, mkdirSync, renameSync, rmSync, copyFileSync, openSync, closeSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { tmpdir } from 'node:os';
import { join, extname, normalize } from 'node:path';
import { freePort, toolBin, here } from './lib.mjs';

const args = process.argv.slice(2);
const runtime = args[0];
const tarball = args[args.indexOf('--tarball') + 1];
if (runtime !== 'browser-host' && (!['node', 'deno', 'browser', 'workerd'].includes(runtime) || args.indexOf('--tarball') < 0)) {
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

// ------------------------------------------------------------------ browser
// Starting Chromium, and even loading playwright, takes seconds on a small machine, and
// the runner starts a subject per `start` step (timed). So every browser subject of a
// project is a thin relay to one browser host: a detached process (started by the first
// subject, stopping by itself once idle for BROWSER_IDLE_MS) that holds one Chromium and a
// few warm pages, each in its own fresh context (profile), with the agent loaded. A
// subject takes one page for its whole life; the page is never reused.

const BROWSER_IDLE_MS = 15_000;
const WARM_PAGES = 2;
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic',
  '--disable-extensions', '--disable-dev-shm-usage'];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function browser(dir) {
  const hostDir = `${dir}-browser-host`;
  mkdirSync(hostDir, { recursive: true });
  const endpoint = join(hostDir, 'port');
  const lock = join(hostDir, 'lock');
  // Find (or start) the host and connect; undefined after 30 s.
  const attach = async () => {
    for (let i = 0; i < 600; i++) {
      let port;
      try { port = Number(readFileSync(endpoint, 'utf8')); } catch { /* not yet */ }
      if (port) {
        const sock = await new Promise((resolve) => {
          const s = connect(port, '127.0.0.1', () => resolve(s));
          s.on('error', () => resolve(undefined));
        });
        if (sock) return sock;
        rmSync(endpoint, { force: true }); // a host that is gone
        rmSync(lock, { force: true });
      }
      try {
        closeSync(openSync(lock, 'wx')); // whoever creates the lock starts the host
        const log = openSync(join(hostDir, 'host.log'), 'a');
        spawn(process.execPath, [new URL(import.meta.url).pathname, 'browser-host', dir], { detached: true, stdio: ['ignore', log, log] }).unref();
      } catch { /* another subject is starting it */ }
      await sleep(50);
    }
    return undefined;
  };
  // Lines sent before the host's first answer are kept: a host that was stopping when we
  // connected drops the connection at once, and they go again to the next host.
  let unanswered = [];
  let sock;
  const open = async () => {
    for (let tries = 0; tries < 5; tries++) {
      const s = await attach();
      if (!s) break;
      const gone = new Promise((resolve) => { s.once('close', resolve); });
      s.on('error', (e) => console.error(`browser subject: ${e.message}`));
      const rl = createInterface({ input: s });
      rl.on('error', () => {}); // the socket's own handler reports it
      let answered = false;
      rl.on('line', (l) => {
        answered = true;
        unanswered = null;
        if (l.startsWith('#')) process.stderr.write(`${l.slice(1)}\n`);
        else out(l);
      });
      sock = s;
      for (const l of unanswered ?? []) s.write(`${l}\n`);
      await gone;
      if (answered || unanswered === null) process.exit(0);
      sock = undefined;
    }
    console.error('browser subject: no browser host within 30 s');
    process.exit(1);
  };
  const opened = open();
  relayStdin((l) => {
    if (unanswered) unanswered.push(l);
    sock?.write(`${l}\n`);
  }, () => {
    sock?.write('{"id":-1,"cmd":"close"}\n');
    setTimeout(() => process.exit(0), 1500).unref();
  });
  await opened;
}

async function browserHost(dir) {
  const hostDir = `${dir}-browser-host`;
  const { chromium } = await import(join(here, '..', 'test-env', 'node_modules', 'playwright-core', 'index.mjs'));
  const b = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: CHROMIUM_ARGS });
  const http = createServer(async (req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url, 'http://x').pathname)).replace(/^(\.\.[/\\])+/, '');
    try {
      const body = await readFile(join(dir, path === '/' ? 'index.html' : path));
      res.writeHead(200, { 'content-type': TYPES[extname(path)] ?? 'application/octet-stream' }).end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  const httpPort = await freePort();
  await new Promise((r) => http.listen(httpPort, '127.0.0.1', r));

  async function warmPage() {
    const context = await b.newContext();
    const page = await context.newPage();
    const w = { context, page, sink: () => {}, log: () => {} };
    page.on('console', (m) => w.log(`[browser] ${m.text()}`));
    await page.exposeFunction('__emit', (l) => w.sink(l));
    await page.goto(`http://127.0.0.1:${httpPort}/index.html`);
    await page.waitForFunction(() => window.__agentReady === true, null, { timeout: 30_000 });
    return w;
  }
  const pool = [];
  const fill = () => {
    while (pool.length < WARM_PAGES) {
      const p = warmPage();
      p.catch(() => {}); // a failed warm page is replaced when taken
      pool.push(p);
    }
  };
  fill();

  let sessions = 0;
  let idleSince = Date.now();
  let stopping = false;
  const server = createNetServer(async (sock) => {
    sock.on('error', () => {});
    if (stopping) {
      // Connected between the idle decision and the exit: the subject starts another host.
      sock.destroy();
      return;
    }
    sessions++;
    const next = pool.shift() ?? warmPage();
    fill();
    let w;
    try {
      w = await next.catch(() => warmPage());
    } catch (e) {
      sock.end(`#browser host: no page: ${e.message}\n`);
      sessions--;
      return;
    }
    const { context, page } = w;
    const send = (l) => { if (!sock.destroyed) sock.write(`${l}\n`); };
    w.log = (l) => send(`#${l}`);
    let storeFile = null;
    let closeId;
    let done = false;
    const finish = async () => {
      if (done) return;
      done = true;
      sock.end();
      await context.close().catch(() => {});
      sessions--;
      idleSince = Date.now();
    };
    w.sink = async (l) => {
      if (closeId !== undefined && parse(l)?.id === closeId) {
        // The close reply: keep localStorage for the next subject of this cacheDir first.
        if (storeFile) writeJson(storeFile, await page.evaluate(() => Object.fromEntries(Object.entries(localStorage))));
        send(l);
        await finish();
        return;
      }
      send(l);
    };
    let chain = Promise.resolve();
    createInterface({ input: sock }).on('line', (l) => {
      chain = chain.then(async () => {
        const cmd = parse(l);
        if (cmd?.cmd === 'start' && typeof cmd.options?.cacheDir === 'string') {
          storeFile = join(cmd.options.cacheDir, '.apolloconf-localStorage.json');
          const seed = readJson(storeFile);
          await page.evaluate((st) => { for (const [k, v] of Object.entries(st)) localStorage.setItem(k, v); }, seed);
        }
        if (cmd?.cmd === 'close') closeId = cmd.id;
        await page.evaluate((line) => window.__handle(line), l);
      }).catch(() => {});
    });
    sock.on('close', () => {
      // The subject went away without a close: close the client, then the context.
      if (!done) chain.then(() => page.evaluate(() => window.__handle('{"id":-2,"cmd":"close"}')).catch(() => {})).then(() => sleep(200)).then(finish);
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  writeFileSync(join(hostDir, 'port.tmp'), String(server.address().port));
  renameSync(join(hostDir, 'port.tmp'), join(hostDir, 'port'));
  const stop = async () => {
    rmSync(join(hostDir, 'port'), { force: true });
    rmSync(join(hostDir, 'lock'), { force: true });
    await b.close().catch(() => {});
    process.exit(0);
  };
  for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, stop);
  for (;;) {
    await sleep(1000);
    if (sessions === 0 && Date.now() - idleSince > BROWSER_IDLE_MS) {
      stopping = true;
      server.close();
      await stop();
    }
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
    ${mod(`${pkgRoot}/dist/apolloconf_yaml.js`)},
    (name = "${pkgRoot}/dist/apolloconf_yaml_bg.wasm", wasm = embed "${pkgRoot}/dist/apolloconf_yaml_bg.wasm"),
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
} else if (runtime === 'browser-host') {
  await browserHost(args[1]);
} else {
  await main();
}
