// Driver of this repository's npm package `apolloconf`, with its defaults (the Java
// client's timing) and a file cache in PEERS_DIR.
import proto from './proto.cjs';
import { ApolloClient } from 'apolloconf';

const { settings, out, change, ready, serve } = proto;

const started = performance.now();
let client;
try {
  client = await ApolloClient.create({
    appId: settings.app,
    configServer: settings.url,
    namespaces: settings.namespaces,
    cache: { dir: settings.dir },
  });
} catch (e) {
  out({ error: `create() failed: ${e && e.message}` });
  process.exit(1);
}
client.on('change', (event) => {
  for (const c of event.changes) change(event.namespace, c.key, c.newValue);
});

const read = (ns, key) => client.namespace(ns).get(key);
await ready(read, started);
serve(read);
