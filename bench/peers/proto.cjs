'use strict';
// The line protocol shared by the JavaScript drivers (see README.md).
const readline = require('node:readline');

function out(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

function setting(name) {
  const v = process.env[name];
  if (v === undefined) {
    out({ error: `${name} is not set` });
    process.exit(2);
  }
  return v;
}

const settings = {
  url: setting('PEERS_URL'),
  app: setting('PEERS_APP'),
  namespaces: setting('PEERS_NAMESPACES').split(','),
  probe: setting('PEERS_PROBE'),
  watch: (process.env.PEERS_WATCH || '').split(',').filter(Boolean),
  dir: setting('PEERS_DIR'),
};

// A read as the protocol sends it: strings as they are, anything else as null or as the
// value itself (which the harness then counts as wrong).
function wire(v) {
  return v === undefined || v === null ? null : v;
}

function change(ns, key, value) {
  out({ change: { ns, key, value: wire(value) } });
}

// Wait until `read(ns, probe)` is a non-empty string for every namespace, then print
// `ready` with the milliseconds since `started` (bounded: 60 s).
async function ready(read, started) {
  const deadline = performance.now() + 60000;
  for (;;) {
    const all = settings.namespaces.every((ns) => {
      const v = read(ns, settings.probe);
      return typeof v === 'string' && v !== '';
    });
    if (all) {
      out({ ready: performance.now() - started });
      return;
    }
    if (performance.now() > deadline) {
      out({ error: 'not every namespace was readable within 60 s' });
      return;
    }
    await new Promise((r) => setTimeout(r, 5));
  }
}

// Answer `get NS KEY` lines; exit on `quit` or at the end of stdin.
function serve(read) {
  const rl = readline.createInterface({ input: process.stdin });
  rl.on('line', (line) => {
    const [cmd, ns, key] = line.trim().split(' ');
    if (cmd === 'get') {
      let value;
      try {
        value = read(ns, key);
      } catch (e) {
        value = undefined;
      }
      out({ value: { ns, key, value: wire(value) } });
    } else if (cmd === 'quit') {
      process.exit(0);
    }
  });
  rl.on('close', () => process.exit(0));
}

// For clients that hand over whole namespaces: remembers the last values of each namespace
// and reports the keys that differ (nothing for the first sighting of a namespace).
function differ() {
  const last = new Map();
  return (ns, values) => {
    const before = last.get(ns);
    last.set(ns, values);
    if (!before) return;
    for (const k of Object.keys(values)) {
      if (before[k] !== values[k]) change(ns, k, values[k]);
    }
    for (const k of Object.keys(before)) {
      if (!(k in values)) change(ns, k, undefined);
    }
  };
}

module.exports = { settings, out, change, ready, serve, differ };
