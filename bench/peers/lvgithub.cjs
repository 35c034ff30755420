'use strict';
// Driver of npm `@lvgithub/ctrip-apollo-client`. Its `onChange` callback receives every
// namespace's whole configuration (dotted keys turned into nested objects), so the driver
// flattens it back and reports the keys that differ.
const path = require('node:path');
const { settings, out, ready, serve, differ } = require('./proto.cjs');
const { CtripApolloClient } = require('@lvgithub/ctrip-apollo-client');

function flatten(obj, prefix, into) {
  for (const [k, v] of Object.entries(obj || {})) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (v !== null && typeof v === 'object') flatten(v, key, into);
    else into[key] = v;
  }
  return into;
}

const started = performance.now();
const client = new CtripApolloClient({
  configServerUrl: settings.url,
  appId: settings.app,
  clusterName: 'default', // its default is the string 'cluster'
  namespaceList: settings.namespaces,
  configPath: path.join(settings.dir, 'apolloConfig.json'),
});
const report = differ();
client.onChange((all) => {
  for (const ns of Object.keys(all)) report(ns, flatten(all[ns].configurations, '', {}));
});

const read = (ns, key) => client.getValue(key, ns);
client.ready().then(
  () => ready(read, started),
  (e) => out({ error: `ready() failed: ${e && e.message}` }),
);
serve(read);
