"""Numbers of the Python package (printed by `cargo xtask bench`, never asserted):
get() against a dict lookup, publish -> listener latency, process start -> ready with 20
namespaces, and the RSS of an idle process with and without a client."""

import os
import statistics
import subprocess
import sys
import textwrap
import threading
import time
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import apolloconf  # noqa: E402
from server import TestServer, fast_timing  # noqa: E402

NO_ENV = dict(environ={}, server_properties="/nonexistent/server.properties")


def per_op_ns(stmt, globs, number=1_000_000, repeat=5):
    return min(timeit.repeat(stmt, globals=globs, number=number, repeat=repeat)) / number * 1e9


def bench_get(server):
    c = apolloconf.Client("SampleApp", config_service=server.url, cache=False, **NO_ENV)
    d = dict(c.merged())
    g = {"c": c, "d": d, "k": "timeout"}
    dict_get = per_op_ns("d.get(k)", g)
    dict_index = per_op_ns("d[k]", g)
    client_get = per_op_ns("c.get(k)", g)
    client_index = per_op_ns("c[k]", g)
    typed = per_op_ns("c.get_int(k)", g, number=300_000)
    print(f"get(): dict.get {dict_get:.0f} ns, d[k] {dict_index:.0f} ns; client.get {client_get:.0f} ns "
          f"({client_get / dict_get:.1f}x dict.get), client[k] {client_index:.0f} ns "
          f"({client_index / dict_index:.1f}x d[k]); get_int {typed:.0f} ns")
    c.close()


def bench_latency(server, n=200):
    timing = dict(fast_timing(), longPollQps=1000, loadConfigQps=1000)
    c = apolloconf.Client("SampleApp", config_service=server.url, cache=False, timing=timing, **NO_ENV)
    arrived = {}
    cv = threading.Condition()

    def listener(event):
        t = time.perf_counter()
        for ch in event.changes:
            if ch.key == "seq":
                with cv:
                    arrived[ch.new] = t
                    cv.notify_all()

    c.on_change(listener)
    lat = []
    for i in range(n):
        v = str(i)
        t0 = time.perf_counter()
        server.publish({"seq": v, "timeout": "100"})
        with cv:
            cv.wait_for(lambda: v in arrived, timeout=10)
        if v in arrived:
            lat.append((arrived[v] - t0) * 1000)
    c.close()
    lat.sort()
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
    print(f"publish -> listener over {n} publishes ({len(lat)} seen): median {statistics.median(lat):.1f} ms, "
          f"p99 {p99:.1f} ms, max {lat[-1]:.1f} ms")


def bench_startup(server, namespaces=20):
    names = [f"ns{i:02d}" for i in range(namespaces)]
    for n in names:
        server.publish({"k": n}, namespace=n)
    code = textwrap.dedent(
        f"""
        import time, sys
        t_import = time.time()
        import apolloconf
        t_client = time.time()
        c = apolloconf.Client("SampleApp", config_service={server.url!r}, namespaces={names!r},
                              cache=False, environ={{}}, server_properties="/nonexistent")
        t_ready = time.time()
        assert c.ready and c.namespace("ns19").get("k") == "ns19"
        print(t_import, t_client, t_ready)
        c.close()
        """
    )
    runs = []
    for _ in range(5):
        t0 = time.time()
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
        t_import, t_client, t_ready = map(float, out)
        runs.append(((t_ready - t0) * 1000, (t_client - t_import) * 1000, (t_ready - t_client) * 1000))
    total = statistics.median(r[0] for r in runs)
    imp = statistics.median(r[1] for r in runs)
    start = statistics.median(r[2] for r in runs)
    print(f"process start -> ready with {namespaces} namespaces (Java default timing), median of 5: {total:.0f} ms "
          f"(import apolloconf {imp:.0f} ms, Client() {start:.0f} ms)")


def rss_kib(code):
    script = code + "\nimport time; time.sleep(1.0)\nprint([l for l in open('/proc/self/status') if l.startswith('VmRSS')][0].split()[1])"
    return int(subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.strip())


def bench_rss(server):
    idle = statistics.median(rss_kib("pass") for _ in range(3))
    imported = statistics.median(rss_kib("import apolloconf") for _ in range(3))
    client = statistics.median(
        rss_kib(
            f"import apolloconf\nc = apolloconf.Client('SampleApp', config_service={server.url!r}, cache=False, "
            "environ={}, server_properties='/nonexistent')"
        )
        for _ in range(3)
    )
    print(f"RSS of an idle Python process: {idle / 1024:.1f} MiB; with apolloconf imported {imported / 1024:.1f} MiB; "
          f"with a started client {client / 1024:.1f} MiB (+{(client - idle) / 1024:.1f} MiB)")


def main():
    server = TestServer()
    try:
        server.publish({"timeout": "100", "greeting": "hello", "db.url": "jdbc:x"})
        print(f"python {sys.version.split()[0]}, apolloconf {apolloconf.__version__}, pid {os.getpid()}")
        bench_get(server)
        bench_latency(server)
        bench_startup(server)
        bench_rss(server)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
