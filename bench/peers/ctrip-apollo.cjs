'use strict';
// Driver of npm `ctrip-apollo`: one cluster object, one namespace object per namespace
// (each an EventEmitter with `change`, `add` and `delete` events).
const { settings, out, change, ready, serve } = require('./proto.cjs');
const apollo = require('ctrip-apollo');

const started = performance.now();
const cluster = apollo({ host: settings.url, appId: settings.app }).cluster('default');
const namespaces = new Map();
for (const name of settings.namespaces) {
  const ns = cluster.namespace(name);
  ns.on('change', (e) => change(name, e.key, e.newValue));
  ns.on('add', (e) => change(name, e.key, e.value));
  ns.on('delete', (e) => change(name, e.key, undefined));
  namespaces.set(name, ns);
}

// `get` throws before `ready()` has resolved.
const read = (ns, key) => namespaces.get(ns)?.get(key);
Promise.all([...namespaces.values()].map((ns) => ns.ready())).then(
  () => ready((ns, key) => {
    try {
      return read(ns, key);
    } catch (e) {
      return undefined;
    }
  }, started),
  (e) => out({ error: `ready() failed: ${e && e.message}` }),
);
serve(read);
