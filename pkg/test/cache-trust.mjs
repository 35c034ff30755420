// The file cache trusts only files of its own user (docs/protocol.md#cache-file): run inside
// Node or Deno (both through node:fs) against a dead server, so values can only come from
// the cache. A symbolic link at the cache path, a file others may write, a file of another
// user (when running as root: chowned to 65534) and a file over 48 MiB are refused with a
// CACHE error event and serve nothing; the file the client writes itself is 0644, and no
// temporary file is left behind. Returns the number of checks.
import { mkdirSync, writeFileSync, symlinkSync, chmodSync, chownSync, truncateSync, readdirSync, statSync, rmSync, readFileSync } from 'node:fs';
import process from 'node:process';

export async function cacheTrust({ ApolloClient, dir, server, deadServer, log }) {
  const appId = 'TrustApp';
  const root = `${dir}/trust-cache`;
  const folder = `${root}/${appId}/config-cache`;
  const file = `${folder}/${appId}+default+application.properties`;
  let checks = 0;
  const fail = (m) => {
    throw new Error(`cache trust: ${m}`);
  };
  const fresh = () => {
    rmSync(root, { recursive: true, force: true });
    mkdirSync(folder, { recursive: true });
  };
  // Starts a client against the dead server; returns (value of k, CACHE errors).
  const startFromCache = async () => {
    const errors = [];
    const client = await ApolloClient.create({
      appId, configServer: deadServer, cache: { dir: root }, startupTimeoutMs: 300, requireValues: false,
      listeners: { error: (e) => { if (e.code === 'CACHE') errors.push(e.message); } },
    });
    const value = client.get('k');
    await client.close();
    return { value, errors };
  };
  const refused = async (what) => {
    const { value, errors } = await startFromCache();
    if (value !== undefined && value !== null) fail(`${what}: served k=${value}`);
    if (!errors.some((m) => m.includes('not read'))) fail(`${what}: no CACHE error saying why (${JSON.stringify(errors)})`);
    checks++;
    log(`cache trust: ${what} refused: ${errors.find((m) => m.includes('not read'))}`);
  };

  // A trusted file serves.
  fresh();
  writeFileSync(file, 'k=from-cache\n', { mode: 0o644 });
  chmodSync(file, 0o644);
  const ok = await startFromCache();
  if (ok.value !== 'from-cache') fail(`a file of our own was not served (${JSON.stringify(ok)})`);
  checks++;

  // A symbolic link at the cache path (to a file that would otherwise be fine).
  fresh();
  writeFileSync(`${root}/elsewhere`, 'k=planted\n', { mode: 0o644 });
  symlinkSync(`${root}/elsewhere`, file);
  await refused('a symbolic link');

  // A file others may write.
  fresh();
  writeFileSync(file, 'k=planted\n');
  chmodSync(file, 0o666);
  await refused('a file writable by others');

  // A file of another user.
  if (typeof process.getuid === 'function' && process.getuid() === 0) {
    fresh();
    writeFileSync(file, 'k=planted\n', { mode: 0o644 });
    chmodSync(file, 0o644);
    chownSync(file, 65534, 65534);
    await refused('a file of uid 65534');
  } else {
    log('cache trust: NOTE not root, the second-uid check cannot run here');
  }

  // A file over 48 MiB (sparse: no disk used).
  fresh();
  writeFileSync(file, 'k=huge\n', { mode: 0o644 });
  chmodSync(file, 0o644);
  truncateSync(file, 49 * 1024 * 1024);
  await refused('a 49 MiB file');

  // What the client writes itself: mode 0644, no temporary file left.
  fresh();
  const client = await ApolloClient.create({ appId, configServer: server, cache: { dir: root }, startupTimeoutMs: 10_000 });
  await client.close();
  const names = readdirSync(folder);
  if (names.some((n) => n.endsWith('.tmp'))) fail(`temporary files left: ${names}`);
  const st = statSync(file);
  if ((st.mode & 0o777 & 0o022) !== 0) fail(`written with mode ${(st.mode & 0o777).toString(8)}`);
  if (!readFileSync(file, 'latin1').includes('#Persisted by DefaultConfig')) fail('not the Java layout');
  checks++;
  rmSync(root, { recursive: true, force: true });
  return checks;
}
