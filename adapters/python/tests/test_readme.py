"""The Python examples of README.md run as written, against the test server serving the
sample configuration of examples/config (the README's URL replaced by the server's)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from server import ROOT, TestServer

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
# The Django blocks are fragments of a project (tested in test_django.py).
RUNNABLE = [b for b in BLOCKS if "import apolloconf" in b or "apolloconf.compat" in b]


@pytest.fixture(scope="module")
def sample_server():
    s = TestServer("60s", "--dir", str(ROOT / "examples" / "config"))
    yield s
    s.stop()


def test_there_are_examples():
    assert len(RUNNABLE) >= 4


@pytest.mark.parametrize("index", range(len(RUNNABLE)))
def test_readme_example(sample_server, tmp_path, index):
    code = RUNNABLE[index].replace("http://127.0.0.1:8080", sample_server.url).replace("/tmp/apollo-cache", str(tmp_path))
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=tmp_path,
                       env={"PATH": "/usr/bin:/bin", "APOLLO_CACHE_DIR": str(tmp_path / "cache")})
    assert p.returncode == 0, p.stdout + p.stderr
    if "print(client.get(\"greeting\"))" in code:
        assert "Hello from Apollo" in p.stdout
