"""Driver of this repository's Python package (`apolloconf-client`, import `apolloconf`),
with its defaults (the Java client's timing) and its cache in PEERS_DIR."""

import os
import time

import peerproto as p
import apolloconf


def on_change(event):
    for c in event.changes:
        p.change(event.namespace, c.key, c.new)


started = time.monotonic()
try:
    client = apolloconf.Client(
        p.APP,
        config_service=p.URL,
        namespaces=p.NAMESPACES,
        cache_dir=p.DIR,
        environ={},
        server_properties=os.path.join(p.DIR, "no-server.properties"),
        on_change=on_change,
    )
except Exception as e:
    p.out({"error": "Client() failed: %s" % e})
    raise SystemExit(1)


def read(ns, key):
    return client.namespace(ns).get(key)


p.ready(read, started)
p.serve(read)
