"""Listeners and reads under load."""

import threading

from server import wait_until


def test_many_publishes_many_listeners_concurrent_reads(server, make_client):
    c = make_client()
    n = 200
    counts = [0] * 5
    last = [None] * 5

    def make(i):
        def listener(event):
            counts[i] += 1
            for ch in event.changes:
                if ch.key == "n":
                    last[i] = ch.new
            if i == 0:
                c.get("n")  # reading inside a listener is fine

        return listener

    for i in range(5):
        c.on_change(make(i), keys=["n"])
    stop = threading.Event()
    reads = [0]

    def reader():
        while not stop.is_set():
            v = c.get("n")
            assert v is None or v.isdigit()
            reads[0] += 1

    readers = [threading.Thread(target=reader) for _ in range(3)]
    for t in readers:
        t.start()
    try:
        for i in range(n):
            server.publish({"n": str(i)})
        assert wait_until(lambda: c.get("n") == str(n - 1), 30)
        assert wait_until(lambda: all(v == str(n - 1) for v in last), 30)
    finally:
        stop.set()
        for t in readers:
            t.join()
    # Publishes close together may be seen as one change: never more events than publishes.
    assert all(1 <= x <= n for x in counts) and len(set(counts)) == 1
    assert reads[0] > 100
    assert c.metrics()["listener_errors"] == 0
