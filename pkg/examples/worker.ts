// A Cloudflare-style worker (workerd): no cache by default; pass a KV-like store if wanted.
import { ApolloClient } from 'apolloconf';

interface KV {
  get(key: string): Promise<string | null>;
  put(key: string, value: string): Promise<void>;
}
interface Env {
  APOLLO_URL: string;
  CONFIG_CACHE?: KV;
}

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    const kv = env.CONFIG_CACHE;
    await using client = await ApolloClient.create({
      appId: 'edge-app',
      configServer: env.APOLLO_URL,
      cache: kv ? { get: (k) => kv.get(k), set: (k, v) => kv.put(k, v) } : false,
      startupTimeoutMs: 5_000,
    });
    const path = new URL(request.url).pathname;
    return Response.json({ path, greeting: client.get('greeting', 'hello') });
  },
};
