// A conformance subject: the packed package running in one runtime, driven by JSON lines.
//
//   node pkg/test/subject.mjs <node|deno|browser|workerd> --tarball T
//
// It installs the tarball into a temp project, starts the runtime with agent.mjs inside,
// prints {"event":"subject-ready","runtime":...} and then relays: each line on stdin is a
// command for the agent (see agent.mjs), each line the agent emits goes to stdout. When
// stdin ends the subject closes the client and exits. Diagnostics go to stderr.

import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import { readFile, writeFile } from 'node:fs/promises';
import { copyFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { join, extname, normalize } from 'node:path';
import { project, entryFor, freePort, toolBin, here } from './lib.mjs';

const args = process.argv.slice(2);
const runtime = args[0];
const tarball = args[args.indexOf('--tarball') + 1];
if (!['node', 'deno', 'browser', 'workerd'].includes(runtime) || args.indexOf('--tarball') < 0) {
  console.error('usage: subject.mjs <node|deno|browser|workerd> --tarball T');
  process.exit(2);
}

function stdinLines(onLine, onEnd) {
  const rl = createInterface({ input: process.stdin });
  rl.on('line', (l) => { if (l.trim() !== '') onLine(l); });
  rl.on('close', onEnd);
}

const out = (line) => process.stdout.write(`${line}\n`);
const ready = () => out(JSON.stringify({ event: 'subject-ready', runtime }));

const STDIO_AGENT = (entry) => `import process from 'node:process';
import { createInterface } from 'node:readline';
import { ApolloClient } from ${JSON.stringify(entry)};
import { createAgent } from './agent.mjs';
const handle = createAgent({ ApolloClient, emit: (l) => process.stdout.write(l + '\\n') });
let chain = Promise.resolve();
const rl = createInterface({ input: process.stdin });
rl.on('line', (l) => { chain = chain.then(() => handle(l)); });
rl.on('close', () => { chain = chain.then(() => handle('{"op":"close"}').catch(() => {})); });
process.stdout.write(JSON.stringify({ event: 'agent-ready' }) + '\\n');
`;

async function main() {
  const dir = project(tarball, `subject-${runtime}`);
  copyFileSync(join(here, 'agent.mjs'), join(dir, 'agent.mjs'));
  if (runtime === 'node' || runtime === 'deno') return stdioSubject(dir);
  if (runtime === 'browser') return browserSubject(dir);
  return workerdSubject(dir);
}

async function stdioSubject(dir) {
  await writeFile(join(dir, 'agent-main.mjs'), STDIO_AGENT('apolloconf'));
  let child;
  if (runtime === 'node') {
    child = spawn(process.execPath, ['agent-main.mjs'], { cwd: dir, stdio: ['pipe', 'pipe', 'inherit'] });
  } else {
    await writeFile(join(dir, 'deno.json'), JSON.stringify({ nodeModulesDir: 'manual' }));
    child = spawn(toolBin('deno'), ['run', '--allow-net=127.0.0.1', '--allow-read=.', '--allow-write=.', '--allow-env', 'agent-main.mjs'],
      { cwd: dir, stdio: ['pipe', 'pipe', 'inherit'], env: { ...process.env, DENO_NO_UPDATE_CHECK: '1', NO_COLOR: '1' } });
  }
  createInterface({ input: child.stdout }).on('line', (l) => {
    if (l.includes('"agent-ready"')) ready();
    else out(l);
  });
  stdinLines((l) => child.stdin.write(`${l}\n`), () => child.stdin.end());
  child.on('exit', (code) => { process.exitCode = code ?? 1; });
}

const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.mjs': 'text/javascript', '.wasm': 'application/wasm', '.json': 'application/json' };

async function browserSubject(dir) {
  const entry = entryFor(dir, 'browser');
  await writeFile(join(dir, 'index.html'), `<!doctype html><meta charset="utf-8">
<script type="importmap">${JSON.stringify({ imports: { apolloconf: entry } })}</script>
<script type="module">
import { ApolloClient } from 'apolloconf';
import { createAgent } from './agent.mjs';
localStorage.clear();
const handle = createAgent({ ApolloClient, emit: (l) => window.__emit(l) });
let chain = Promise.resolve();
window.__handle = (l) => { chain = chain.then(() => handle(l)); return true; };
window.__agentReady = true;
</script>`);
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
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium', headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
  });
  const page = await browser.newPage();
  page.on('console', (m) => process.stderr.write(`[browser] ${m.text()}\n`));
  await page.exposeFunction('__emit', (l) => out(l));
  await page.goto(`http://127.0.0.1:${port}/index.html`);
  await page.waitForFunction(() => window.__agentReady === true, null, { timeout: 30_000 });
  ready();
  let chain = Promise.resolve();
  stdinLines((l) => { chain = chain.then(() => page.evaluate((line) => window.__handle(line), l)); }, async () => {
    await chain;
    await page.evaluate(() => window.__handle('{"op":"close"}'));
    await new Promise((r) => setTimeout(r, 200));
    await browser.close();
    http.close();
  });
}

async function workerdSubject(dir) {
  const entry = entryFor(dir, 'workerd');
  const pkgRoot = 'node_modules/apolloconf';
  await writeFile(join(dir, 'worker.mjs'), `import { ApolloClient } from ${JSON.stringify(entry)};
import { createAgent } from './agent.mjs';
// One WebSocket is one session: the client's I/O belongs to the request that accepted it.
export default {
  async fetch(request) {
    if (request.headers.get('upgrade') !== 'websocket') return new Response('websocket only', { status: 426 });
    const [clientSide, serverSide] = Object.values(new WebSocketPair());
    serverSide.accept();
    const handle = createAgent({ ApolloClient, emit: (l) => serverSide.send(l) });
    let chain = Promise.resolve();
    serverSide.addEventListener('message', (ev) => { chain = chain.then(() => handle(String(ev.data))); });
    serverSide.addEventListener('close', () => { chain = chain.then(() => handle('{"op":"close"}')); });
    return new Response(null, { status: 101, webSocket: clientSide });
  },
};
`);
  const port = await freePort();
  const mod = (name) => `(name = "${name}", esModule = embed "${name}")`;
  await writeFile(join(dir, 'config.capnp'), `using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [
    (name = "main", worker = .mainWorker),
    (name = "loopback-net", network = (allow = ["public", "private", "local"])),
  ],
  sockets = [ (name = "http", address = "127.0.0.1:${port}", http = (), service = "main") ],
);
const mainWorker :Workerd.Worker = (
  modules = [
    ${mod('worker.mjs')}, ${mod('agent.mjs')},
    ${mod(`${pkgRoot}/src/workerd.js`)}, ${mod(`${pkgRoot}/src/client.js`)}, ${mod(`${pkgRoot}/dist/apolloconf_wasm.js`)},
    (name = "${pkgRoot}/dist/apolloconf_wasm_bg.wasm", wasm = embed "${pkgRoot}/dist/apolloconf_wasm_bg.wasm"),
    ${mod(`${pkgRoot}/dist/apolloconf_yaml.js`)},
    (name = "${pkgRoot}/dist/apolloconf_yaml_bg.wasm", wasm = embed "${pkgRoot}/dist/apolloconf_yaml_bg.wasm"),
  ],
  compatibilityDate = "2025-09-01",
  globalOutbound = "loopback-net",
);
`);
  const child = spawn(toolBin('workerd'), ['serve', 'config.capnp'], { cwd: dir, stdio: ['ignore', 'inherit', 'inherit'] });
  let ws;
  for (let i = 0; i < 100 && !ws; i++) {
    ws = await new Promise((resolve) => {
      const s = new WebSocket(`ws://127.0.0.1:${port}/`);
      s.onopen = () => resolve(s);
      s.onerror = () => resolve(undefined);
    });
    if (!ws) await new Promise((r) => setTimeout(r, 100));
  }
  if (!ws) {
    console.error('workerd subject: could not connect');
    child.kill('SIGKILL');
    process.exitCode = 1;
    return;
  }
  ws.onmessage = (ev) => out(String(ev.data));
  ready();
  stdinLines((l) => ws.send(l), () => {
    ws.send('{"op":"close"}');
    setTimeout(() => { ws.close(); child.kill('SIGKILL'); }, 300); // workerd drains open sockets on SIGTERM
  });
}

// Node 20 has a WebSocket client only behind a flag (workerd is reached through one).
if (runtime === 'workerd' && typeof globalThis.WebSocket !== 'function') {
  const child = spawn(process.execPath, ['--experimental-websocket', '--no-warnings', ...process.argv.slice(1)], { stdio: 'inherit' });
  child.on('exit', (code) => { process.exitCode = code ?? 1; });
} else {
  await main();
}
