"""apolloconf.django in a real Django project (each case in its own process)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("django")

PROJECT = Path(__file__).parent / "django_project"


def run(server, mode, **env):
    e = dict(os.environ, APOLLOCONF_TEST_URL=server.url, **env)
    e.pop("DJANGO_SETTINGS_MODULE", None)
    p = subprocess.run([sys.executable, str(PROJECT / "check.py"), mode], env=e, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    return p.stdout


@pytest.fixture
def published(server):
    server.publish({"feature.x": "true", "ratio": "0.75", "greeting": "hello", "hosts": "h1, h2", "limits": '{"max": 5}', "secret.key": "from-apollo"})
    server.publish({"page.size": "50"}, namespace="django")
    return server


def test_overlay_signals_and_live_accessor(published):
    assert "OK overlay" in run(published, "overlay")


def test_protected_setting_refused(published):
    assert "OK refused" in run(published, "refused", APOLLOCONF_TEST_PROTECTED="refused")


def test_protected_setting_explicitly_allowed(published):
    assert "OK allowed" in run(published, "allowed", APOLLOCONF_TEST_PROTECTED="allowed")
