"""The Apollo-compatible test server (`apolloconf-testserver`) as a child process, and its
admin API, for the Python tests. The binary comes from APOLLOCONF_TESTSERVER (set by
`cargo xtask test`), else `target/debug/apolloconf-testserver` of this checkout."""

import json
import os
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any, Dict, Optional

ROOT = Path(__file__).resolve().parents[3]


def binary() -> str:
    return os.environ.get("APOLLOCONF_TESTSERVER") or str(ROOT / "target" / "debug" / "apolloconf-testserver")


class TestServer:
    """One server instance on 127.0.0.1 (a free port), stopped by `stop()`."""

    __test__ = False  # not a pytest class

    def __init__(self, hold: str = "60s", *extra: str) -> None:
        self.proc = subprocess.Popen(
            [binary(), "--port", "0", "--hold", hold, *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if not line.startswith("listening "):
            self.proc.kill()
            raise RuntimeError(f"test server did not start: {line!r}")
        self.url = line.split(" ", 1)[1]

    def admin(self, method: str, path: str, body: Optional[Dict[str, Any]] = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            f"{self.url}/__admin/{path}", data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            text = r.read().decode()
        return json.loads(text) if text else None

    def publish(self, items: Dict[str, str], namespace: str = "application", app: str = "SampleApp", cluster: str = "default") -> str:
        r = self.admin("POST", f"apps/{app}/clusters/{cluster}/namespaces/{namespace}/releases", {"configurations": items})
        return r["releaseKey"]

    def publish_content(self, text: str, namespace: str, app: str = "SampleApp", cluster: str = "default") -> str:
        r = self.admin("POST", f"apps/{app}/clusters/{cluster}/namespaces/{namespace}/releases", {"content": text})
        return r["releaseKey"]

    def requests(self) -> Any:
        return self.admin("GET", "requests")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def fast_timing() -> Dict[str, int]:
    """The Java defaults scaled down for tests (as the Rust tests and the runner do)."""
    return {
        "longPollInitialDelayMs": 0,
        "connectTimeoutMs": 500,
        "readTimeoutMs": 2000,
        "fetchRetryInitialMs": 50,
        "fetchRetryMaxMs": 300,
        "longPollRetryInitialMs": 50,
        "longPollRetryMaxMs": 300,
        "longPollQps": 50,
        "loadConfigQps": 50,
    }


def wait_until(f, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if f():
            return True
        time.sleep(0.005)
    return f()
