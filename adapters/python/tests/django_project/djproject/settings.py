"""A small Django project whose settings are overlaid from Apollo (the test server)."""

import os

SECRET_KEY = "test-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["testserver"]
ROOT_URLCONF = "djproject.urls"
INSTALLED_APPS = ["django.contrib.contenttypes", "apolloconf.django"]
DATABASES = {}
USE_TZ = True

FEATURE_X = False
PAGE_SIZE = 20
RATIO = 0.5
GREETING = "hi"
HOSTS = ["a"]
LIMITS = {"max": 1}

APOLLOCONF = {
    "app_id": "SampleApp",
    "config_service": os.environ["APOLLOCONF_TEST_URL"],
    "namespaces": ["application", "django"],
    "environ": {},
    "server_properties": "/nonexistent/server.properties",
    "cache": False,
    "startup_timeout": 10,
    "timing": {"longPollInitialDelayMs": 0, "fetchRetryInitialMs": 50, "longPollRetryInitialMs": 50},
    "settings": {
        "FEATURE_X": "feature.x",
        "PAGE_SIZE": {"key": "page.size", "namespace": "django"},
        "RATIO": "ratio",
        "GREETING": "greeting",
        "HOSTS": "hosts",
        "LIMITS": "limits",
    },
}

if os.environ.get("APOLLOCONF_TEST_PROTECTED"):
    APOLLOCONF["settings"]["SECRET_KEY"] = "secret.key"
    if os.environ["APOLLOCONF_TEST_PROTECTED"] == "allowed":
        APOLLOCONF["allow_runtime"] = ["SECRET_KEY"]
