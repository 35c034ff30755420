"""A client created before fork() keeps working in the child (gunicorn --preload)."""

import json
import os
import select
import time

import pytest

from server import wait_until


def _child_report(fd_w, c, server_url):
    """Runs in the child: current values, then a publish made by the parent arrives."""
    got = []
    try:
        c.on_change(got.append, keys=["timeout"])
        report = {"pid": os.getpid(), "before": c.get("timeout"), "threads_ok": True}
        os.write(fd_w, (json.dumps(report) + "\n").encode())
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and c.get("timeout") != "fork-2":
            time.sleep(0.01)
        wait_until(lambda: got, 5)
        report = {"after": c.get("timeout"), "events": len(got), "metrics_ok": c.metrics()["closed"] is False}
        c.close()
        report["closed"] = c.closed
        os.write(fd_w, (json.dumps(report) + "\n").encode())
    finally:
        os._exit(0)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_child_gets_fresh_threads_and_current_values(server, make_client):
    c = make_client()
    seen_parent = []
    c.on_change(seen_parent.append, keys=["timeout"])
    server.publish({"timeout": "fork-1"})
    assert wait_until(lambda: c.get("timeout") == "fork-1")
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        _child_report(w, c, server.url)
    os.close(w)
    buf = b""

    def line():
        nonlocal buf
        deadline = time.monotonic() + 20
        while b"\n" not in buf and time.monotonic() < deadline:
            ready, _, _ = select.select([r], [], [], 0.5)
            if ready:
                chunk = os.read(r, 4096)
                if not chunk:
                    break
                buf += chunk
        one, _, buf = buf.partition(b"\n")
        return json.loads(one) if one else None

    first = line()
    assert first == {"pid": pid, "before": "fork-1", "threads_ok": True}
    server.publish({"timeout": "fork-2"})
    second = line()
    _, status = os.waitpid(pid, 0)
    os.close(r)
    assert second == {"after": "fork-2", "events": 1, "metrics_ok": True, "closed": True}
    assert os.WIFEXITED(status)
    # The parent kept working too.
    assert wait_until(lambda: c.get("timeout") == "fork-2")
    assert wait_until(lambda: len(seen_parent) == 2)
