// Drives subject.mjs for one runtime the way a conformance runner would: create, get,
// listen, a change after a publish, close, end of input, exit.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { here } from './lib.mjs';
import { publish } from './scenario.mjs';

export async function subjectSmoke(runtime, tarball, server) {
  const appId = `subject-${runtime}-${Date.now().toString(36)}`;
  await publish(server, appId, 'application', { k: 'v1' });
  const child = spawn(process.execPath, [join(here, 'subject.mjs'), runtime, '--tarball', tarball], { stdio: ['pipe', 'pipe', 'inherit'] });
  const waiters = [];
  const lines = [];
  createInterface({ input: child.stdout }).on('line', (l) => {
    let msg;
    try { msg = JSON.parse(l); } catch { console.error(`subject ${runtime}: not JSON: ${l}`); return; }
    lines.push(msg);
    for (const w of [...waiters]) if (w.test(msg)) { waiters.splice(waiters.indexOf(w), 1); w.resolve(msg); }
  });
  const exited = new Promise((r) => child.on('exit', (code) => r(code)));
  let gone = false;
  exited.then(() => { gone = true; for (const w of waiters) w.fail(); });
  const wait = (test, what, ms = 30_000) => {
    const hit = lines.find(test);
    if (hit) return Promise.resolve(hit);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`subject ${runtime}: no ${what} within ${ms} ms`)), ms);
      if (gone) reject(new Error(`subject ${runtime} exited before ${what}`));
      waiters.push({ test, resolve: (m) => { clearTimeout(t); resolve(m); }, fail: () => { clearTimeout(t); reject(new Error(`subject ${runtime} exited before ${what}`)); } });
    });
  };
  let id = 0;
  const call = async (cmd) => {
    const my = ++id;
    child.stdin.write(`${JSON.stringify({ id: my, ...cmd })}\n`);
    const reply = await wait((m) => m.id === my, `reply to ${cmd.op}`);
    if (!reply.ok) throw new Error(`subject ${runtime}: ${cmd.op} failed: ${JSON.stringify(reply.error)}`);
    return reply;
  };
  try {
    await wait((m) => m.event === 'subject-ready', 'subject-ready', 60_000);
    await call({ op: 'create', options: { appId, configServer: server, cache: false, mode: 'background', timing: { longPollInitialDelayMs: 0 } } });
    if ((await call({ op: 'get', key: 'k' })).value !== 'v1') throw new Error('get k != v1');
    const { listener } = await call({ op: 'listen', interest: { keys: ['k'] } });
    await publish(server, appId, 'application', { k: 'v2' });
    const ev = await wait((m) => m.event === 'change' && m.listener === listener, 'change event');
    if (ev.changes[0].newValue !== 'v2') throw new Error(`bad change ${JSON.stringify(ev)}`);
    const snap = await call({ op: 'snapshot' });
    if (snap.namespaces.application.properties.k !== 'v2') throw new Error('snapshot not updated');
    await call({ op: 'close' });
    child.stdin.end();
    const code = await Promise.race([exited, new Promise((r) => setTimeout(() => r('hung'), 15_000))]);
    if (code !== 0) throw new Error(`subject ${runtime} exit: ${code}`);
    console.log(`${runtime}: conformance subject adapter works (create, get, listen, change, snapshot, close, exit)`);
    return true;
  } catch (e) {
    console.error(String(e?.stack ?? e));
    child.kill();
    return false;
  }
}
