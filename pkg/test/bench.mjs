// Size and speed numbers of the packed package (printed, never asserted):
//   node pkg/test/bench.mjs --tarball T --server BIN [--counting-dist DIR]
//
// With --counting-dist (the engine built with its `count-allocs` feature, as `cargo xtask
// bench` does), a second project whose installed engine is replaced by that build measures
// what one publish costs: 20 namespaces of 50 keys, 100 publishes that change one key of
// one namespace; per publish the latency to the change event, the engine's allocations,
// the bytes of text that cross the wasm boundary and the process's CPU time.
import { readFileSync, statSync, writeFileSync, copyFileSync, readdirSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { join } from 'node:path';
import { project, startServer, runLimited, resultOf, pkgDir } from './lib.mjs';

const args = process.argv.slice(2);
const opt = (n) => (args.includes(n) ? args[args.indexOf(n) + 1] : undefined);
const tarball = opt('--tarball');
const serverBin = opt('--server');

const wasm = readFileSync(join(pkgDir, 'dist', 'apolloconf_wasm_bg.wasm'));
const glue = readFileSync(join(pkgDir, 'dist', 'apolloconf_wasm.js'));
const kb = (n) => `${n} B (${(n / 1024).toFixed(1)} KiB)`;
console.log(`wasm raw:        ${kb(wasm.length)}`);
console.log(`wasm gzip -9:    ${kb(gzipSync(wasm, { level: 9 }).length)}`);
console.log(`glue js raw/gz:  ${glue.length} B / ${gzipSync(glue, { level: 9 }).length} B`);
console.log(`packed tarball:  ${kb(statSync(tarball).size)}`);

const dir = project(tarball, 'bench');
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

const server = await startServer(serverBin, ['--hold', '60s']);
try {
  const r = await runLimited(process.execPath, ['bench.mjs', server.url], { cwd: dir, timeoutMs: 300_000 });
  let ok = r.code === 0 && resultOf(r.stdout);
  if (ok && costDir) {
    const c = await runLimited(process.execPath, ['cost.mjs', server.url], { cwd: costDir, timeoutMs: 300_000 });
    ok = c.code === 0 && resultOf(c.stdout);
  }
  process.exitCode = ok ? 0 : 1;
} finally {
  server.stop();
}
