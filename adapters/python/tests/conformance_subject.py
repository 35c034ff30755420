"""The `python` conformance subject (tests/conformance/README.md): the installed
`apolloconf` package, through its public API only, driven by the runner's line protocol
(one JSON object per line on stdin and stdout).

    APOLLOCONF_SUBJECT=python APOLLOCONF_SUBJECT_CMD="/abs/venv/bin/python /abs/conformance_subject.py" \
        cargo test -p apolloconf-conformance --test conformance
"""

import json
import os
import sys
import threading
import time

import apolloconf

_out_lock = threading.Lock()


def send(obj):
    line = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    with _out_lock:
        try:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
        except (BrokenPipeError, ValueError):
            pass  # the runner went away; the end of stdin ends us


class Fail(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


def on_change(event):
    send(
        {
            "event": "change",
            "namespace": event.namespace,
            "releaseKey": event.release_key,
            "source": event.source,
            "changes": [{"key": c.key, "old": c.old, "new": c.new, "kind": c.kind} for c in event.changes],
        }
    )


def on_error(err):
    send({"event": "error", "code": err.code, "message": str(err), "namespace": err.namespace})


def start(o):
    kwargs = dict(
        environ={},  # only the runner's options count
        server_properties="/nonexistent/apolloconf-conformance/server.properties",
        on_error=on_error,
        on_change=on_change,
    )
    for opt, arg in [
        ("configService", "config_service"),
        ("metaServer", "meta_server"),
        ("cluster", "cluster"),
        ("dataCenter", "data_center"),
        ("label", "label"),
        ("ip", "ip"),
        ("secret", "secret"),
        ("namespaces", "namespaces"),
        ("timing", "timing"),
    ]:
        if o.get(opt) is not None:
            kwargs[arg] = o[opt]
    if isinstance(o.get("cacheDir"), str):
        kwargs["cache_dir"] = o["cacheDir"]
    else:
        kwargs["cache"] = False
    if o.get("startupTimeoutMs") is not None:
        kwargs["startup_timeout"] = o["startupTimeoutMs"] / 1000.0
    try:
        client = apolloconf.Client(o.get("appId"), **kwargs)
    except apolloconf.ApolloError as e:
        raise Fail(e.code, str(e))
    except (TypeError, ValueError) as e:
        raise Fail("CONFIG", str(e))
    return client


def metrics(c):
    m = c.metrics()

    def counter(x):
        return {
            "sent": x["sent"],
            "ok": x["ok"],
            "notModified": x["not_modified"],
            "notFound": x["not_found"],
            "unauthorized": x["unauthorized"],
            "otherStatus": x["other_status"],
            "transportError": x["transport_error"],
            "parseError": x["parse_error"],
        }

    last = m["last_error"]
    return {
        "configs": counter(m["configs"]),
        "notifications": counter(m["notifications"]),
        "discovery": counter(m["discovery"]),
        "lastError": None if last is None else {"code": last["code"], "message": last["message"], "namespace": last["namespace"]},
        "longPollService": m["long_poll_service"],
        "services": m["services"],
    }


def snapshot(c):
    out = {}
    for name in c.namespaces:
        n = c.namespace(name)
        out[name] = {
            "releaseKey": n.release_key,
            "source": n.source,
            "status": n.status,
            "properties": n.to_dict(),
            "content": n.content,
        }
    return {"namespaces": out}


def other_threads():
    try:
        return len(os.listdir("/proc/self/task")) - 1
    except OSError:
        return None


def thread_names():
    me = str(os.getpid())
    names = []
    try:
        for t in os.listdir("/proc/self/task"):
            if t == me:
                continue
            try:
                with open(f"/proc/self/task/{t}/comm") as f:
                    names.append(f.read().strip())
            except OSError:
                pass
    except OSError:
        pass
    return names


def run(cmd, state):
    name = cmd.get("cmd")
    c = state.get("client")
    if name == "start":
        if c is not None:
            raise Fail("CONFIG", "already started")
        t0 = time.monotonic()
        state["client"] = start(cmd.get("options") or {})
        return {"ms": int((time.monotonic() - t0) * 1000)}
    if name == "close":
        if c is not None:
            c.close()
            state["client"] = None
        deadline = time.monotonic() + 0.5
        n = other_threads()
        while n is not None and n > 0 and time.monotonic() < deadline:
            time.sleep(0.01)
            n = other_threads()
        return {"threads": n, "threadNames": thread_names()}
    if c is None:
        raise Fail("CLOSED", "no client: send start first")
    if name == "get":
        ns = cmd.get("namespace")
        key = cmd.get("key", "")
        if ns is None:
            return {"value": c.get(key)}
        try:
            return {"value": c.namespace(ns).get(key)}
        except apolloconf.NotWatchedError as e:
            raise Fail("NOT_FOUND", str(e))
    if name == "snapshot":
        return snapshot(c)
    if name == "metrics":
        return {"metrics": metrics(c)}
    if name == "watch":
        try:
            c.watch(cmd.get("namespace", ""))
        except apolloconf.ApolloError as e:
            raise Fail(e.code, str(e))
        return {}
    raise Fail("CONFIG", f"unknown command {name!r}")


def main():
    state = {}
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            cmd = json.loads(line)
        except ValueError as e:
            send({"id": None, "ok": False, "error": {"code": "CONFIG", "message": f"bad command line: {e}"}})
            continue
        cid = cmd.get("id")
        try:
            reply = run(cmd, state)
            reply.update({"id": cid, "ok": True})
        except Fail as e:
            reply = {"id": cid, "ok": False, "error": {"code": e.code, "message": e.message}}
        except Exception as e:  # noqa: BLE001 (a subject answers every command)
            reply = {"id": cid, "ok": False, "error": {"code": "CONFIG", "message": f"{type(e).__name__}: {e}"}}
        send(reply)
        if cmd.get("cmd") == "close":
            return
    c = state.get("client")
    if c is not None:
        c.close()


if __name__ == "__main__":
    main()
