// Deno: `deno add npm:apolloconf`, then
// `deno run --allow-net=apollo.example.com --allow-read=node_modules,./apollo-cache --allow-write=./apollo-cache main.ts`
import { ApolloClient } from 'apolloconf';

await using client = await ApolloClient.create({
  appId: 'demo-app',
  configServer: ['http://127.0.0.1:8080'],
  cache: { dir: './apollo-cache' },
});

console.log(client.get('greeting', 'hello'));
for await (const event of client.changes({ keys: ['greeting'] })) {
  console.log('greeting is now', client.get('greeting'), event.releaseKey);
  break; // leaving the block closes the client (`await using`)
}
