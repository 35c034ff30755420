// Size, memory and speed numbers of the packed package (printed, never asserted):
//   node pkg/test/bench.mjs --tarball T --server BIN [--counting-dist DIR]
//
// - Sizes: raw, gzip -9 and brotli of what a browser downloads (the `browser` entry, the
//   client, the engine's glue and .wasm), without and with the YAML module.
// - Memory (Node): RSS and the engine's `WebAssembly.Memory` after start-up with 20
//   namespaces of 50 keys and after 1,000 publishes, beside bare Node, Node that only
//   imports the package and the floor (a bare node:http loop doing the same requests, no
//   client), each in child processes of their own (median of 3 runs).
// - Start-up (Node): time until `create()` resolves with 20 namespaces of 50 keys loaded,
//   from the server and from the file cache with the server down.
// - `client.get()` against a `Map` lookup; publish-to-event latency.
// - With --counting-dist (the engine built with its `count-allocs` feature, as `cargo xtask
//   bench` does), a second project whose installed engine is replaced by that build
//   measures what one publish costs: 20 namespaces of 50 keys, 100 publishes that change
//   one key of one namespace; per publish the latency to the change event, the engine's
//   allocations, the bytes of text that cross the wasm boundary and the process's CPU time.
import { readFileSync, statSync, writeFileSync, copyFileSync, readdirSync, mkdtempSync } from 'node:fs';
import { gzipSync, brotliCompressSync } from 'node:zlib';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { project, startServer, runLimited, resultOf } from './lib.mjs';

const args = process.argv.slice(2);
const opt = (n) => (args.includes(n) ? args[args.indexOf(n) + 1] : undefined);
const tarball = opt('--tarball');
const serverBin = opt('--server');

const dir = project(tarball, 'bench');
const installed = join(dir, 'node_modules', 'apolloconf');

// ------------------------------------------------------------------ sizes

const pad = (v, n) => String(v).padStart(n);
const sizeOf = (file) => {
  const b = readFileSync(join(installed, file));
  return { file, raw: b.length, gz: gzipSync(b, { level: 9 }).length, br: brotliCompressSync(b).length };
};
const sum = (rows) => rows.reduce((a, r) => ({ raw: a.raw + r.raw, gz: a.gz + r.gz, br: a.br + r.br }), { raw: 0, gz: 0, br: 0 });
const line = (name, r) => console.log(`${name.padEnd(36)} ${pad(r.raw, 8)} ${pad(r.gz, 8)} ${pad(r.br, 8)}`);
const core = ['src/browser.js', 'src/client.js', 'dist/apolloconf_wasm.js', 'dist/apolloconf_wasm_bg.wasm'].map(sizeOf);
const yaml = ['dist/apolloconf_yaml.js', 'dist/apolloconf_yaml_bg.wasm'].map(sizeOf);
console.log(`${'what a browser downloads (bytes)'.padEnd(36)} ${pad('raw', 8)} ${pad('gzip -9', 8)} ${pad('brotli', 8)}`);
for (const r of core) line(r.file, r);
line('= without YAML', sum(core));
for (const r of yaml) line(`+ ${r.file}`, r);
line('= with a YAML namespace', sum([...core, ...yaml]));
line('  the .wasm files alone, without YAML', sum(core.slice(3)));
console.log(`packed tarball: ${statSync(tarball).size} B`);

// ------------------------------------------------------------------ children

const NAMESPACES = 20;
const KEYS = 50;
const names = Array.from({ length: NAMESPACES }, (_, i) => 'ns' + String(i).padStart(2, '0'));
// 45 keys of its own per namespace, 5 shared by all (the merged view takes the first).
const values = (ns) => {
  const o = {};
  for (let j = 0; j < KEYS; j++) o[j < 45 ? `${ns}.k${j}` : `shared.k${j}`] = `value-${ns}-${j}`;
  return o;
};
async function publishTo(server, appId, ns, configurations) {
  const r = await fetch(`${server}/__admin/apps/${appId}/clusters/default/namespaces/${ns}/releases`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ configurations }) });
  if (!r.ok) throw new Error(`publish ${r.status}`);
  await r.text();
}

// One child process: a script in the bench project that reports lines `R <json>` and may
// wait for lines on its stdin; `drive(lines)` gets its lines one by one.
function child(script, argv, drive = async () => {}) {
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, [script, ...argv], { cwd: dir, stdio: ['pipe', 'pipe', 'inherit'] });
    const results = [];
    const queue = [];
    let wake = null;
    const next = () => new Promise((r) => {
      if (queue.length) r(queue.shift());
      else wake = r;
    });
    const timer = setTimeout(() => c.kill('SIGKILL'), 300_000);
    createInterface({ input: c.stdout }).on('line', (l) => {
      if (l.startsWith('R ')) results.push(JSON.parse(l.slice(2)));
      else if (wake) {
        const w = wake;
        wake = null;
        w(l);
      } else queue.push(l);
    });
    c.on('exit', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(results);
      else reject(new Error(`${script} exited with ${code}`));
    });
    drive({ next, send: (l) => c.stdin.write(`${l}\n`) }).catch(reject);
  });
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const mib = (b) => `${(b / 1048576).toFixed(1)} MiB`;

writeFileSync(join(dir, 'mem.mjs'), `// node mem.mjs <bare|import|client> [server appId]
import { createInterface } from 'node:readline';
const [mode, server, appId] = process.argv.slice(2);
import { readFileSync } from 'node:fs';
const rss = () => process.memoryUsage().rss;
const peak = () => process.resourceUsage().maxRSS * 1024;
// Linux: the anonymous part of RSS (heaps, JIT code, the wasm memory), without the file
// pages (mostly the node binary's own code, shared by every node process).
const anon = () => {
  try {
    return Number(/RssAnon:\\s+(\\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))[1]) * 1024;
  } catch {
    return undefined;
  }
};
const report = (o) => console.log('R ' + JSON.stringify({ rss: rss(), peak: peak(), anon: anon(), ...o }));
const settle = () => new Promise((r) => setTimeout(r, 200));
if (mode === 'bare') {
  await settle();
  report({});
  process.exit(0);
}
const { ApolloClient } = await import('apolloconf');
if (mode === 'import') {
  await settle();
  report({});
  process.exit(0);
}
const names = ${JSON.stringify(names)};
const t0 = performance.now();
// Rate limits raised so that 1,000 publishes of one namespace do not take 500 s.
const client = await ApolloClient.create({ appId, configServer: server, cache: false, namespaces: names,
  timing: { longPollInitialDelayMs: 0, loadConfigQps: 1000, longPollQps: 1000 } });
const startupMs = performance.now() - t0;
if (names.some((n) => client.namespace(n).status !== 'loaded')) throw new Error('not every namespace is loaded');
// The package's engine instance (the same module the package imported).
const glue = await import('./node_modules/apolloconf/dist/apolloconf_wasm.js');
const memory = () => glue.initSync().memory.buffer.byteLength;
await settle();
report({ at: 'start', memory: memory(), startupMs });
let events = 0;
client.on('change', () => console.log('EV ' + ++events), { namespace: names[10] });
console.log('READY');
for await (const l of createInterface({ input: process.stdin })) if (l === 'DONE') break;
await settle();
report({ at: 'publishes', memory: memory(), events });
await client.close();
process.exit(0);
`);

// The floor: what Node itself costs for the same work, with no client at all: a bare loop
// over node:http that loads the 20 namespaces (JSON into Maps) and long-polls, fetching
// a namespace again when notified. Same protocol as mem.mjs: READY, EV n, DONE.
writeFileSync(join(dir, 'floor.mjs'), `import http from 'node:http';
import { createInterface } from 'node:readline';
import { readFileSync } from 'node:fs';
const [server, appId] = process.argv.slice(2);
const names = ${JSON.stringify(names)};
const agent = new http.Agent({ keepAlive: true });
const once = (path) => new Promise((resolve, reject) => {
  const req = http.get(server + path, { agent }, (res) => {
    const chunks = [];
    res.on('data', (c) => chunks.push(c));
    res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString() }));
    res.on('error', reject);
  });
  req.on('error', reject);
});
const get = async (path) => {
  for (;;) {
    try {
      return await once(path);
    } catch {
      // a kept-alive socket the server closed: again
    }
  }
};
const state = new Map();
const load = async (ns) => {
  const j = JSON.parse((await get('/configs/' + appId + '/default/' + ns)).body);
  state.set(ns, new Map(Object.entries(j.configurations)));
};
await Promise.all(names.map(load));
const ids = Object.fromEntries(names.map((n) => [n, -1]));
const anon = () => Number(/RssAnon:\\s+(\\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? NaN) * 1024 || undefined;
const report = (o) => console.log('R ' + JSON.stringify({ rss: process.memoryUsage().rss, peak: process.resourceUsage().maxRSS * 1024, anon: anon(), ...o }));
let stop = false;
let events = 0;
let first = true;
const poll = async () => {
  while (!stop) {
    const q = encodeURIComponent(JSON.stringify(names.map((n) => ({ namespaceName: n, notificationId: ids[n] }))));
    const r = await get('/notifications/v2?appId=' + appId + '&cluster=default&notifications=' + q);
    if (r.status !== 200) continue;
    for (const n of JSON.parse(r.body)) {
      ids[n.namespaceName] = n.notificationId;
      if (!first) {
        await load(n.namespaceName);
        console.log('EV ' + ++events);
      }
    }
    first = false;
  }
};
const polling = poll();
while (first) await new Promise((r) => setTimeout(r, 10));
await new Promise((r) => setTimeout(r, 200));
report({ at: 'start' });
console.log('READY');
for await (const l of createInterface({ input: process.stdin })) if (l === 'DONE') break;
stop = true;
await new Promise((r) => setTimeout(r, 200));
report({ at: 'publishes', events });
process.exit(0);
`);

writeFileSync(join(dir, 'startup.mjs'), `// node startup.mjs <server> <appId> <cacheDir> : create() with 20 x 50 keys, cold and warm
import { ApolloClient } from 'apolloconf';
const [server, appId, cacheDir] = process.argv.slice(2);
const names = ${JSON.stringify(names)};
const create = async (opts) => {
  const t0 = performance.now();
  const c = await ApolloClient.create({ appId, namespaces: names, ...opts });
  const ms = performance.now() - t0;
  const sources = new Set(names.map((n) => c.namespace(n).status === 'loaded' && c.namespace(n).source));
  await c.close();
  return { ms, sources: [...sources] };
};
const out = {};
if (cacheDir === '-') {
  out.cold = await create({ configServer: server, cache: false });
  out.warm = [];
  for (let i = 0; i < 5; i++) out.warm.push((await create({ configServer: server, cache: false })).ms);
} else {
  await create({ configServer: server, cache: { dir: cacheDir } }); // fills the cache
  out.filled = true;
}
console.log('R ' + JSON.stringify(out));
`);

writeFileSync(join(dir, 'startup-cache.mjs'), `// node startup-cache.mjs <downServer> <appId> <cacheDir> : create() from the file cache, server down
import { ApolloClient } from 'apolloconf';
const [server, appId, cacheDir] = process.argv.slice(2);
const names = ${JSON.stringify(names)};
const times = [];
let sources;
for (let i = 0; i < 6; i++) {
  const t0 = performance.now();
  const c = await ApolloClient.create({ appId, namespaces: names, configServer: server, cache: { dir: cacheDir } });
  times.push(performance.now() - t0);
  sources = [...new Set(names.map((n) => c.namespace(n).source))];
  if (c.get(names[3] + '.k1') !== 'value-' + names[3] + '-1') throw new Error('cached value missing');
  await c.close();
}
console.log('R ' + JSON.stringify({ cold: times[0], warm: times.slice(1), sources }));
`);

const server = await startServer(serverBin, ['--hold', '60s']);
let ok = true;
try {
  const appId = `mem-${Date.now().toString(36)}`;
  for (const ns of names) await publishTo(server.url, appId, ns, values(ns));

  // ---------------------------------------------------------------- memory
  const RUNS = 3;
  const PUBLISHES = 1000;
  const runs = { bare: [], import: [], start: [], publishes: [], floorStart: [], floorPublishes: [] };
  let round = 0;
  // Start, then 1,000 publishes of one key of one namespace, each awaited to its event.
  const publishing = (script, argv) => child(script, argv, async ({ next, send }) => {
    if ((await next()) !== 'READY') throw new Error(`${script} did not start`);
    const target = names[10];
    const conf = values(target);
    round++;
    for (let p = 0; p < PUBLISHES; p++) {
      await publishTo(server.url, appId, target, { ...conf, [`${target}.k7`]: `published-${round}-${p}` });
      await next(); // its change event
    }
    send('DONE');
  });
  for (let i = 0; i < RUNS; i++) {
    runs.bare.push((await child('mem.mjs', ['bare']))[0]);
    runs.import.push((await child('mem.mjs', ['import']))[0]);
    const [start, after] = await publishing('mem.mjs', ['client', server.url, appId]);
    if (after.events !== PUBLISHES) throw new Error(`${after.events} change events for ${PUBLISHES} publishes`);
    runs.start.push(start);
    runs.publishes.push(after);
    const [floorStart, floorAfter] = await publishing('floor.mjs', [server.url, appId]);
    runs.floorStart.push(floorStart);
    runs.floorPublishes.push(floorAfter);
  }
  const bare = median(runs.bare.map((r) => r.rss));
  const bareAnon = median(runs.bare.map((r) => r.anon ?? 0));
  const plus = (v, base) => `${v >= base ? '+' : ''}${mib(v - base)}`;
  const row = (name, rs) => {
    const rss = median(rs.map((r) => r.rss));
    const peak = median(rs.map((r) => r.peak));
    const anon = rs[0].anon === undefined ? '' : `, anonymous ${mib(median(rs.map((r) => r.anon)))} (${plus(median(rs.map((r) => r.anon)), bareAnon)})`;
    const memory = rs[0].memory === undefined ? '' : `, WebAssembly.Memory ${mib(median(rs.map((r) => r.memory)))}`;
    console.log(`${name.padEnd(44)} RSS ${mib(rss).padStart(9)} (bare ${plus(rss, bare)}), peak ${mib(peak)}${anon}${memory}`);
  };
  console.log(`memory in Node ${process.versions.node} (median of ${RUNS} runs, each a process of its own):`);
  row('bare node', runs.bare);
  row('import of the package only', runs.import);
  row(`client, ${NAMESPACES} x ${KEYS} keys, after start-up`, runs.start);
  row(`the same after ${PUBLISHES} publishes`, runs.publishes);
  row('floor: a bare node:http loop, same work', runs.floorStart);
  row(`the floor after ${PUBLISHES} publishes`, runs.floorPublishes);

  // ---------------------------------------------------------------- start-up
  const s = (await child('startup.mjs', [server.url, appId, '-']))[0];
  console.log(`start-up, ${NAMESPACES} x ${KEYS} keys from the server (create() until every namespace is loaded): ` +
    `${s.cold.ms.toFixed(1)} ms in a fresh process (engine load included), ${median(s.warm).toFixed(1)} ms for another client (median of ${s.warm.length})`);
  const cacheDir = mkdtempSync(join(tmpdir(), 'apolloconf-bench-cache-'));
  await child('startup.mjs', [server.url, appId, cacheDir]);
  const c = (await child('startup-cache.mjs', ['http://127.0.0.1:59999', appId, cacheDir]))[0];
  console.log(`start-up from the file cache, server down (${c.sources.join(', ')}): ` +
    `${c.cold.toFixed(1)} ms in a fresh process, ${median(c.warm).toFixed(1)} ms for another client (median of ${c.warm.length})`);
} catch (e) {
  console.error(`bench: ${e?.stack ?? e}`);
  ok = false;
} finally {
  server.stop();
}

// ------------------------------------------------------------------ get() vs Map, latency

writeFileSync(join(dir, 'bench.mjs'), `import { ApolloClient } from 'apolloconf';
const server = process.argv[2];
const appId = 'bench-' + Date.now().toString(36);
const items = {};
for (let i = 0; i < 100; i++) items['key.' + i] = 'value-' + i;
async function publish(conf) {
  const r = await fetch(server + '/__admin/apps/' + appId + '/clusters/default/namespaces/application/releases', {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ configurations: conf }) });
  if (!r.ok) throw new Error('publish ' + r.status);
}
await publish(items);
const client = await ApolloClient.create({ appId, configServer: server, cache: false,
  timing: { longPollInitialDelayMs: 0, loadConfigQps: 1000, longPollQps: 1000 } });
const keys = Object.keys(items);
const map = new Map(Object.entries(items));
function time(fn) {
  const N = 2_000_000;
  let sink = 0;
  for (let i = 0; i < 200_000; i++) sink += fn(keys[i % 100]).length; // warm-up
  const t = process.hrtime.bigint();
  for (let i = 0; i < N; i++) sink += fn(keys[i % 100]).length;
  const ns = Number(process.hrtime.bigint() - t) / N;
  if (sink === 0) console.log('');
  return ns;
}
const mapNs = time((k) => map.get(k));
const getNs = time((k) => client.get(k));
console.log('Map.get:        ' + mapNs.toFixed(1) + ' ns/op');
console.log('client.get():   ' + getNs.toFixed(1) + ' ns/op (' + (getNs / mapNs).toFixed(2) + 'x Map)');
let waiting = null;
client.on('change', () => { const w = waiting; waiting = null; w?.(); });
const lat = [];
for (let i = 0; i < 200; i++) {
  const got = new Promise((r) => { waiting = r; });
  const t0 = performance.now();
  await publish({ ...items, counter: String(i) });
  await got;
  lat.push(performance.now() - t0);
}
lat.sort((a, b) => a - b);
const q = (p) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))];
console.log('publish->event: median ' + q(0.5).toFixed(1) + ' ms, p99 ' + q(0.99).toFixed(1) + ' ms, max ' + lat[lat.length - 1].toFixed(1) + ' ms (200 publishes, qps limits raised)');
await client.close();
console.log('RESULT {}');
`);

// One publish's cost, in a project whose engine counts its allocations.
const countingDist = opt('--counting-dist');
let costDir;
if (countingDist) {
  costDir = project(tarball, 'bench-cost');
  for (const f of readdirSync(countingDist)) copyFileSync(join(countingDist, f), join(costDir, 'node_modules', 'apolloconf', 'dist', f));
  writeFileSync(join(costDir, 'cost.mjs'), `import { ApolloClient } from 'apolloconf';
import { allocStats } from './node_modules/apolloconf/dist/apolloconf_wasm.js';
const server = process.argv[2];
const appId = 'cost-' + Date.now().toString(36);
const NAMESPACES = 20, KEYS = 50, PUBLISHES = 100;
const names = Array.from({ length: NAMESPACES }, (_, i) => 'ns' + String(i).padStart(2, '0'));
// 45 keys of its own per namespace, 5 shared by all (the merged view takes the first).
const values = (ns) => {
  const o = {};
  for (let j = 0; j < KEYS; j++) o[j < 45 ? ns + '.k' + j : 'shared.k' + j] = 'value-' + ns + '-' + j;
  return o;
};
async function publish(ns, conf) {
  const r = await fetch(server + '/__admin/apps/' + appId + '/clusters/default/namespaces/' + ns + '/releases', {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ configurations: conf }) });
  if (!r.ok) throw new Error('publish ' + r.status);
}
for (const ns of names) await publish(ns, values(ns));
// Text out of the engine: the glue decodes every string the engine returns or passes to a
// callback with TextDecoder (strings going in are mostly copied without it: not counted).
let outBytes = 0, outStrings = 0;
const decode = TextDecoder.prototype.decode;
TextDecoder.prototype.decode = function (input, options) { outBytes += input?.byteLength ?? 0; outStrings++; return decode.call(this, input, options); };
const client = await ApolloClient.create({ appId, configServer: server, cache: false, namespaces: names,
  timing: { longPollInitialDelayMs: 0, loadConfigQps: 1000, longPollQps: 1000 } });
const target = names[10];
const key = target + '.k7';
let waiting = null;
client.on('change', () => { const w = waiting; waiting = null; w?.(); }, { keys: [key] });
const lat = [];
const conf = values(target);
// Let the first long poll settle before measuring.
await new Promise((r) => setTimeout(r, 200));
const a0 = allocStats(), b0 = [outBytes, outStrings], c0 = process.cpuUsage();
for (let i = 0; i < PUBLISHES; i++) {
  const got = new Promise((r) => { waiting = r; });
  const t0 = performance.now();
  await publish(target, { ...conf, [key]: 'published-' + i });
  await got;
  lat.push(performance.now() - t0);
  if (client.get(key) !== 'published-' + i) throw new Error('get() does not show the publish');
}
// The engine answers the fetch and re-polls after the event: let the last cycle finish.
await new Promise((r) => setTimeout(r, 100));
const a1 = allocStats(), c1 = process.cpuUsage(c0);
const per = (n) => (n / PUBLISHES).toFixed(0);
lat.sort((a, b) => a - b);
const q = (p) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))];
console.log('publish->event (' + NAMESPACES + ' namespaces x ' + KEYS + ' keys, ' + PUBLISHES + ' publishes of one key): median ' + q(0.5).toFixed(2) + ' ms, p95 ' + q(0.95).toFixed(2) + ' ms, max ' + lat[lat.length - 1].toFixed(2) + ' ms');
console.log('per publish: ' + per(a1[0] - a0[0]) + ' engine allocations (' + per(a1[1] - a0[1]) + ' B), ' +
  per(outBytes - b0[0]) + ' B of text out of the engine in ' + ((outStrings - b0[1]) / PUBLISHES).toFixed(1) + ' strings, ' +
  ((c1.user + c1.system) / PUBLISHES / 1000).toFixed(2) + ' ms CPU (whole process)');
await client.close();
console.log('RESULT {}');
`);
}

const server2 = await startServer(serverBin, ['--hold', '60s']);
try {
  const r = await runLimited(process.execPath, ['bench.mjs', server2.url], { cwd: dir, timeoutMs: 300_000 });
  ok = ok && r.code === 0 && resultOf(r.stdout);
  if (ok && costDir) {
    const c = await runLimited(process.execPath, ['cost.mjs', server2.url], { cwd: costDir, timeoutMs: 300_000 });
    ok = c.code === 0 && resultOf(c.stdout);
  }
  process.exitCode = ok ? 0 : 1;
} finally {
  server2.stop();
}
