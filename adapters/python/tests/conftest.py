import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from server import TestServer, fast_timing  # noqa: E402


@pytest.fixture
def server():
    s = TestServer()
    s.publish({"timeout": "100", "greeting": "hello", "db.url": "jdbc:mysql://db:3306/app?useSSL=false&a=b", "code": "007"})
    yield s
    s.stop()


@pytest.fixture
def make_client(server, tmp_path):
    """Clients pointed at `server`, with no process environment, no server.properties and
    the cache in a temp dir; closed at the end."""
    import apolloconf

    made = []

    def make(**kw):
        opts = dict(
            config_service=server.url,
            environ={},
            server_properties=str(tmp_path / "no-server.properties"),
            cache_dir=str(tmp_path / "cache"),
            timing=fast_timing(),
            startup_timeout=10.0,
        )
        opts.update(kw)
        c = apolloconf.Client(kw.pop("app_id", "SampleApp"), **{k: v for k, v in opts.items() if k != "app_id"})
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()
