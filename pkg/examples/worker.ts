// A Cloudflare-style worker (workerd). The client lives in module scope and runs in edge
// mode (the default in workers): no long poll; each request calls refresh(), which makes at
// most one conditional request (304 when unchanged) per namespace per maxAgeMs.
import { ApolloClient } from 'apolloconf';

interface KV {
  get(key: string): Promise<string | null>;
  put(key: string, value: string): Promise<void>;
}
interface Env {
  APOLLO_URL: string;
  CONFIG_CACHE?: KV;
}

let client: Promise<ApolloClient> | undefined;

function apollo(env: Env): Promise<ApolloClient> {
  const kv = env.CONFIG_CACHE;
  client ??= ApolloClient.create({
    appId: 'edge-app',
    configServer: env.APOLLO_URL,
    mode: 'edge',
    cache: kv ? { get: (k) => kv.get(k), set: (k, v) => kv.put(k, v) } : false,
    startupTimeoutMs: 5_000,
  }).catch((e: unknown) => {
    client = undefined; // try again on the next request
    throw e;
  });
  return client;
}

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    const config = await apollo(env);
    await config.refresh({ maxAgeMs: 30_000 });
    const path = new URL(request.url).pathname;
    return Response.json({ path, greeting: config.get('greeting', 'hello') });
  },
};
