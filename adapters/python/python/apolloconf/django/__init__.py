"""Django integration: add ``"apolloconf.django"`` to ``INSTALLED_APPS`` and configure it in
``settings.APOLLOCONF``::

    APOLLOCONF = {
        # any apolloconf.Client argument (else the Java environment variables and
        # server.properties apply, as for apolloconf.Client)
        "app_id": "SampleApp",
        "meta_server": "http://apollo-meta:8080",
        "namespaces": ["application", "django"],
        # Django setting -> Apollo key (merged lookup), or {"key": ..., "namespace": ...}
        "settings": {
            "FEATURE_X": "feature.x",
            "PAGE_SIZE": {"key": "page.size", "namespace": "django"},
        },
        # protected settings that may change at runtime anyway (default: none)
        "allow_runtime": [],
    }

At start-up and on every change the mapped settings are set, converted to the type of
the setting's value in ``settings.py`` (bool, int, float, str, list/tuple split on
commas, dict from JSON); a deleted key brings the ``settings.py`` value back. For each
setting that changed Django's ``setting_changed`` signal is sent (apps that cache settings,
such as Django REST Framework, reset), then :data:`config_changed` once per Apollo change
event. Read values live through :data:`config` (``config.FEATURE_X``): a value copied at
import time never sees a change.

Settings that must not change while a process runs (``SECRET_KEY``, ``DATABASES``,
``INSTALLED_APPS``, ... see :data:`PROTECTED`) are refused (``ImproperlyConfigured`` at
start-up) unless listed in ``allow_runtime``. One client per process, created on first
use (the app creates it in ``ready()``; ``"lazy": True`` defers it to the first use of
:data:`config` or :func:`get_client`); it keeps working in the workers of a pre-fork
server (gunicorn ``--preload``).
"""

from .conf import PROTECTED, config, get_client, reset_for_tests
from .signals import config_changed

__all__ = ["config", "config_changed", "get_client", "PROTECTED", "reset_for_tests"]
