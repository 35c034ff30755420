// Entry for browsers (and the `default` condition): the engine is fetched from next to this
// module (bundlers rewrite the URL); the YAML module likewise, but only when a YAML
// namespace is configured or watched. The default cache is localStorage when available.
import init, * as engine from '../dist/apolloconf_wasm.js';
import { bindRuntime, localStorageCache } from './client.js';

export const ApolloClient = bindRuntime({
  name: 'this runtime',
  async load() {
    await init({ module_or_path: new URL('../dist/apolloconf_wasm_bg.wasm', import.meta.url) });
    return engine;
  },
  async loadYaml() {
    const glue = await import('../dist/apolloconf_yaml.js');
    await glue.default({ module_or_path: new URL('../dist/apolloconf_yaml_bg.wasm', import.meta.url) });
    return glue.flatten;
  },
  defaultCache: () => {
    try {
      return localStorageCache();
    } catch {
      return null; // storage disabled (e.g. sandboxed frames)
    }
  },
});
export { ApolloError, ErrorCode } from './client.js';
