// Helpers of the runtime tests: the test server, a temp project with the packed tarball
// installed, child processes with time limits. Node only (the drivers run in Node; the
// code under test runs in each runtime).

import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, copyFileSync, readFileSync, existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

export const here = dirname(fileURLToPath(import.meta.url));
export const pkgDir = join(here, '..');
export const root = join(pkgDir, '..');
export const toolDir = join(pkgDir, 'test-env');
const NATIVE = {
  // The .bin shims of these two are Node scripts that spawn the real binary: killing a shim
  // would leave the binary running, so use the binary itself when it is there.
  workerd: ['@cloudflare', `workerd-${process.platform === 'darwin' ? 'darwin' : 'linux'}-${process.arch === 'arm64' ? 'arm64' : '64'}`, 'bin', 'workerd'],
  deno: ['@deno', `${process.platform}-${process.arch === 'arm64' ? 'arm64' : 'x64'}${process.platform === 'linux' ? '-glibc' : ''}`, 'deno'],
};
export const toolBin = (name) => {
  if (NATIVE[name]) {
    const p = join(toolDir, 'node_modules', ...NATIVE[name]);
    if (existsSync(p)) return p;
  }
  return join(toolDir, 'node_modules', '.bin', name);
};

/** Starts `apolloconf-testserver` and resolves to { url, stop } once it listens. */
export function startServer(bin, args = []) {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, ['--port', '0', ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    let buf = '';
    const timer = setTimeout(() => { child.kill(); reject(new Error('test server did not start within 10 s')); }, 10_000);
    child.on('error', (e) => { clearTimeout(timer); reject(e); });
    child.stdout.on('data', (d) => {
      buf += d;
      const m = /listening (http:\/\/\S+)/.exec(buf);
      if (m) {
        clearTimeout(timer);
        child.stdout.removeAllListeners('data');
        child.stdout.resume();
        resolve({ url: m[1].replace(/\/$/, ''), stop: () => child.kill() });
      }
    });
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`test server exited (${code})`)); });
  });
}

/** A free loopback port. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

/** A temp project with the tarball installed (never the source folder), scenario.mjs and
 * cache-trust.mjs. */
export function project(tarball, name) {
  const dir = mkdtempSync(join(tmpdir(), `apolloconf-${name}-`));
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: `apolloconf-${name}-test`, private: true, type: 'module' }, null, 2));
  execFileSync('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error', '--offline', tarball], { cwd: dir, stdio: ['ignore', 2, 2] }); // stdout stays clean for subject.mjs
  copyFileSync(join(here, 'scenario.mjs'), join(dir, 'scenario.mjs'));
  copyFileSync(join(here, 'cache-trust.mjs'), join(dir, 'cache-trust.mjs'));
  return dir;
}

/** The installed package's entry for an `exports` condition, relative to the project. */
export function entryFor(dir, condition) {
  const pj = JSON.parse(readFileSync(join(dir, 'node_modules', 'apolloconf', 'package.json'), 'utf8'));
  const rel = pj.exports['.'][condition];
  if (!rel) throw new Error(`no "${condition}" condition in the package's exports`);
  return `./node_modules/apolloconf/${rel.replace(/^\.\//, '')}`;
}

/**
 * Runs a command with a time limit; resolves to { code, stdout, stderr, exitedAfterMs }
 * where exitedAfterMs is the time from the line matching `marker` to the process exit.
 */
export function runLimited(cmd, args, { cwd, env, timeoutMs = 60_000, marker = /^RESULT /m, echo = true } = {}) {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let markedAt;
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.stdout.on('data', (d) => {
      stdout += d;
      if (echo) process.stdout.write(d);
      if (markedAt === undefined && marker.test(stdout)) markedAt = Date.now();
    });
    child.stderr.on('data', (d) => {
      stderr += d;
      if (echo) process.stderr.write(d);
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, exitedAfterMs: markedAt === undefined ? undefined : Date.now() - markedAt });
    });
  });
}

export function resultOf(stdout) {
  const m = /^RESULT (.*)$/m.exec(stdout);
  return m ? JSON.parse(m[1]) : undefined;
}
