// Size and speed numbers of the packed package (printed, never asserted):
//   node pkg/test/bench.mjs --tarball T --server BIN
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { join } from 'node:path';
import { project, startServer, runLimited, resultOf, pkgDir } from './lib.mjs';

const args = process.argv.slice(2);
const opt = (n) => args[args.indexOf(n) + 1];
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
const server = await startServer(serverBin, ['--hold', '60s']);
try {
  const r = await runLimited(process.execPath, ['bench.mjs', server.url], { cwd: dir, timeoutMs: 300_000 });
  process.exitCode = r.code === 0 && resultOf(r.stdout) ? 0 : 1;
} finally {
  server.stop();
}
