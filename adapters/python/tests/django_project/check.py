"""Runs in its own process (Django settings are per process): `python check.py MODE`."""

import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "djproject.settings")

import django  # noqa: E402

url = os.environ["APOLLOCONF_TEST_URL"]
mode = sys.argv[1]


def wait(f, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if f():
            return True
        time.sleep(0.01)
    return f()


def publish(items, namespace="application"):
    import json
    import urllib.request

    req = urllib.request.Request(
        f"{url}/__admin/apps/SampleApp/clusters/default/namespaces/{namespace}/releases",
        data=json.dumps({"configurations": items}).encode(),
        method="POST",
    )
    urllib.request.urlopen(req, timeout=10).read()


if mode in ("refused", "allowed"):
    from django.core.exceptions import ImproperlyConfigured

    try:
        django.setup()
    except ImproperlyConfigured as e:
        assert mode == "refused", e
        assert "SECRET_KEY" in str(e), e
        print("OK refused:", e)
        sys.exit(0)
    assert mode == "allowed"
    from django.conf import settings

    assert settings.SECRET_KEY == "from-apollo", settings.SECRET_KEY
    print("OK allowed")
    sys.exit(0)

assert mode == "overlay"
from django.core.signals import setting_changed  # noqa: E402

changed_settings = []
apollo_events = []
lock = threading.Lock()


def on_setting_changed(sender, setting, value, enter, **kw):
    with lock:
        changed_settings.append((setting, value))


setting_changed.connect(on_setting_changed)

django.setup()

from django.conf import settings  # noqa: E402
from django.test import Client as HttpClient  # noqa: E402

from apolloconf.django import config, config_changed, get_client  # noqa: E402


def on_config_changed(sender, event, settings, **kw):
    with lock:
        apollo_events.append((event.namespace, sorted(settings)))


config_changed.connect(on_config_changed)

# Start-up overlay, converted to the types of settings.py.
assert settings.FEATURE_X is True, settings.FEATURE_X
assert settings.PAGE_SIZE == 50 and isinstance(settings.PAGE_SIZE, int)
assert settings.RATIO == 0.75
assert settings.GREETING == "hello"  # a plain string, never eval()ed
assert settings.HOSTS == ["h1", "h2"]
assert settings.LIMITS == {"max": 5}
assert ("FEATURE_X", True) in changed_settings and ("PAGE_SIZE", 50) in changed_settings
assert get_client() is get_client()

http = HttpClient()
assert http.get("/feature").json() == {"feature_x": True, "page_size": 50, "stale": 50}

# A change: settings follow, both signals fire, the live accessor sees it, the class
# attribute copied at import does not.
changed_settings.clear()
publish({"page.size": "70"}, namespace="django")
assert wait(lambda: settings.PAGE_SIZE == 70), settings.PAGE_SIZE
assert wait(lambda: ("django", ["PAGE_SIZE"]) in apollo_events), apollo_events
assert ("PAGE_SIZE", 70) in changed_settings, changed_settings
assert config.PAGE_SIZE == 70
assert http.get("/feature").json() == {"feature_x": True, "page_size": 70, "stale": 50}
assert config.get("greeting") == "hello" and config["ratio"] == "0.75"

# A value that does not fit keeps the previous one; a deleted key restores settings.py.
publish({"feature.x": "maybe", "ratio": "0.75", "greeting": "hello", "hosts": "h1, h2", "limits": '{"max": 5}'})
assert wait(lambda: any(ns == "application" for ns, _ in apollo_events))
time.sleep(0.1)
assert settings.FEATURE_X is True
publish({"ratio": "0.75", "greeting": "hello", "hosts": "h1, h2", "limits": '{"max": 5}'})
assert wait(lambda: settings.FEATURE_X is False), settings.FEATURE_X
assert config.FEATURE_X is False
print("OK overlay")
