// Node (>= 18): `npm install apolloconf`, then run with `node --experimental-strip-types` or compile.
import { ApolloClient, ApolloError } from 'apolloconf';

const client = await ApolloClient.create({
  appId: 'demo-app',
  metaServer: 'http://127.0.0.1:8080',
  namespaces: ['application', 'settings.json'],
  cache: { dir: './apollo-cache' }, // Java layout: ./apollo-cache/demo-app/config-cache/*.properties
});

const timeout: number = client.getNumber('request.timeout.ms', 3000);
const enabled: boolean = client.getBoolean('feature.enabled', false);
const settings = JSON.parse(client.namespace('settings.json').content ?? '{}') as { theme?: string };
console.log({ timeout, enabled, theme: settings.theme, greeting: client.get('greeting', 'hello') });

const stop = client.on('change', (event) => {
  for (const c of event.changes) console.log(`${event.namespace}: ${c.key} ${c.type} ${c.oldValue} -> ${c.newValue}`);
}, { prefixes: ['feature.'] });

client.on('error', (e: ApolloError) => console.warn(`apollo: ${e.code} ${e.message}`));
console.log(client.metrics().configs.ok);

setTimeout(() => {
  stop();
  void client.close(); // the process exits by itself once closed
}, 60_000);
