"""An interpreter that exits with a client still open exits promptly."""

import subprocess
import sys
import textwrap
import time

from server import fast_timing

SCRIPT = textwrap.dedent(
    """
    import sys, threading, time
    import apolloconf
    c = apolloconf.Client("SampleApp", config_service=sys.argv[1], environ={{}},
                          server_properties="/nonexistent", cache=False, timing={timing})
    c.on_change(lambda e: time.sleep(0.2))
    {extra}
    print(c.get("greeting"), flush=True)
    """
)


def run(server, extra=""):
    code = SCRIPT.format(timing=repr(fast_timing()), extra=extra)
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, "-c", code, server.url], capture_output=True, text=True, timeout=30)
    return p, time.monotonic() - t0


def test_exit_with_open_client(server):
    p, secs = run(server)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "hello"
    assert secs < 5, secs


def test_exit_with_thread_blocked_on_changes(server):
    # A non-daemon thread iterating changes() must not keep the interpreter alive.
    extra = "threading.Thread(target=lambda: [None for _ in c.changes()]).start()"
    p, secs = run(server, extra)
    assert p.returncode == 0, p.stderr
    assert secs < 5, secs


def test_exit_while_listener_runs(server):
    extra = (
        "import urllib.request, json\n"
        "req = urllib.request.Request(sys.argv[1] + '/__admin/apps/SampleApp/clusters/default/namespaces/application/releases',"
        " data=json.dumps({'configurations': {'greeting': 'hello', 'x': '1'}}).encode(), method='POST')\n"
        "urllib.request.urlopen(req).read()\n"
        "time.sleep(0.1)\n"
    )
    p, secs = run(server, extra)
    assert p.returncode == 0, p.stderr
    assert secs < 5, secs
