// A browser page (bundled, or as a module script with an import map). The real Apollo sends
// no CORS headers: serve the config service through a same-origin proxy, e.g. `/apollo`.
import { ApolloClient } from 'apolloconf';

const client = await ApolloClient.create({
  appId: 'web-app',
  configServer: `${location.origin}/apollo`,
  namespaces: ['application'],
  // cache: 'localStorage' is the default in browsers
});

const banner = document.querySelector<HTMLElement>('#banner');
const render = () => {
  if (banner) banner.textContent = client.get('banner.text', '');
};
render();
client.on('change', render, { keys: ['banner.text'] });
addEventListener('pagehide', () => void client.close());
