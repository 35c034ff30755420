"""Driver of PyPI `apollo-client-python` (the cingee2016 fork of xhrg-product's client),
configured as its README's "auto update" example: long polling and the update threads on,
no .env file. Its cache goes to ~/data/apollo/cache, so the harness sets HOME to PEERS_DIR.
"""

import time

import peerproto as p
import apollo.apollo_client as xh_module

# The client finds its own IP by opening a UDP socket towards 8.8.8.8; the benchmark
# stays on loopback, so it reports 127.0.0.1 instead (sent only as the `ip` parameter).
xh_module.init_ip = lambda: "127.0.0.1"


def on_change(event):
    p.change(event["namespace"], event["key"], event["value"])


started = time.monotonic()
client = xh_module.ApolloClient(
    config_url=p.URL,
    app_id=p.APP,
    cluster="default",
    namespaces=p.NAMESPACES,
    enable_long_pool_updates=True,
    auto_update_enabled=True,
    enable_dotenv=False,
    value_change_listeners=[on_change],
)


def read(ns, key):
    return client.get_value(key, namespace=ns)


p.ready(read, started)
p.serve(read)
