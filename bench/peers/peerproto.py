"""The line protocol shared by the Python drivers (see README.md)."""

import json
import os
import sys
import threading
import time

_out_lock = threading.Lock()


def out(obj):
    line = json.dumps(obj) + "\n"
    with _out_lock:
        sys.stdout.write(line)
        sys.stdout.flush()


def _setting(name):
    value = os.environ.get(name)
    if value is None:
        out({"error": name + " is not set"})
        sys.exit(2)
    return value


URL = _setting("PEERS_URL")
APP = _setting("PEERS_APP")
NAMESPACES = _setting("PEERS_NAMESPACES").split(",")
PROBE = _setting("PEERS_PROBE")
DIR = _setting("PEERS_DIR")


def _wire(value):
    return None if value is None else value


def change(ns, key, value):
    out({"change": {"ns": ns, "key": key, "value": _wire(value)}})


def ready(read, started):
    """Wait until read(ns, PROBE) is a non-empty string in every namespace, then print
    `ready` with the milliseconds since `started` (a time.monotonic()); at most 60 s."""
    deadline = time.monotonic() + 60
    while True:
        values = [read(ns, PROBE) for ns in NAMESPACES]
        if all(isinstance(v, str) and v != "" for v in values):
            out({"ready": (time.monotonic() - started) * 1000.0})
            return True
        if time.monotonic() > deadline:
            out({"error": "not every namespace was readable within 60 s"})
            return False
        time.sleep(0.005)


def serve(read):
    """Answer `get NS KEY` lines; exit on `quit` or at the end of stdin."""
    for line in sys.stdin:
        parts = line.split()
        if len(parts) == 3 and parts[0] == "get":
            try:
                value = read(parts[1], parts[2])
            except Exception:  # a read that fails counts as no value
                value = None
            out({"value": {"ns": parts[1], "key": parts[2], "value": _wire(value)}})
        elif parts[:1] == ["quit"]:
            break
    sys.stdout.flush()
    os._exit(0)
