"""The process's client, the settings overlay and the live accessor."""

import json
import logging
import os
import threading
from typing import Any, Dict, List, Optional, Tuple

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed

import apolloconf

from .signals import config_changed

_log = logging.getLogger("apolloconf")

#: Settings refused as overlay targets unless listed in ``APOLLOCONF["allow_runtime"]``:
#: changing them in a running process breaks it or weakens its security.
PROTECTED = frozenset(
    {
        "SECRET_KEY",
        "SECRET_KEY_FALLBACKS",
        "DATABASES",
        "DATABASE_ROUTERS",
        "INSTALLED_APPS",
        "MIDDLEWARE",
        "ROOT_URLCONF",
        "AUTH_USER_MODEL",
        "AUTHENTICATION_BACKENDS",
        "PASSWORD_HASHERS",
        "CACHES",
        "TEMPLATES",
        "STORAGES",
        "DEFAULT_AUTO_FIELD",
        "ALLOWED_HOSTS",
        "SESSION_ENGINE",
        "USE_TZ",
        "TIME_ZONE",
        "APOLLOCONF",
    }
)

# Keys of APOLLOCONF that are not Client arguments.
_OWN = {"settings", "allow_runtime", "lazy"}

_lock = threading.Lock()
_client: Optional[apolloconf.Client] = None
# Setting name -> its value in settings.py (None: it had none), taken at first overlay.
_originals: Dict[str, Tuple[bool, Any]] = {}


def _reinit_lock() -> None:
    global _lock
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reinit_lock)


def options() -> Dict[str, Any]:
    opts = getattr(settings, "APOLLOCONF", None)
    if opts is None:
        return {}
    if not isinstance(opts, dict):
        raise ImproperlyConfigured("settings.APOLLOCONF must be a dict")
    return opts


def _mapping() -> Dict[str, Tuple[str, Optional[str]]]:
    out: Dict[str, Tuple[str, Optional[str]]] = {}
    for name, target in (options().get("settings") or {}).items():
        if isinstance(target, str):
            out[name] = (target, None)
        elif isinstance(target, dict) and isinstance(target.get("key"), str):
            out[name] = (target["key"], target.get("namespace"))
        else:
            raise ImproperlyConfigured(
                f"APOLLOCONF['settings'][{name!r}] must be an Apollo key or {{'key': ..., 'namespace': ...}}"
            )
    return out


def validate() -> None:
    """Refuse protected settings that are not explicitly allowed."""
    allowed = set(options().get("allow_runtime") or ())
    refused = sorted(n for n in _mapping() if n in PROTECTED and n not in allowed)
    if refused:
        raise ImproperlyConfigured(
            f"APOLLOCONF maps {', '.join(refused)}, which must not change while Django runs; "
            "list them in APOLLOCONF['allow_runtime'] to allow it"
        )


def get_client() -> apolloconf.Client:
    """The process's client, created on first use and kept for the life of the process
    (and across ``fork``)."""
    global _client
    c = _client
    if c is not None:
        return c
    with _lock:
        if _client is None:
            validate()
            kwargs = {k: v for k, v in options().items() if k not in _OWN}
            app_id = kwargs.pop("app_id", None)
            client = apolloconf.Client(app_id, **kwargs)
            _apply_all(client)
            client.on_change(lambda event: _on_change(client, event))
            _client = client
        return _client


def reset_for_tests() -> None:
    """Close the client and bring back the ``settings.py`` values (for tests)."""
    global _client
    with _lock:
        c, _client = _client, None
    if c is not None:
        c.close()
    for name, (had, value) in list(_originals.items()):
        if had:
            setattr(settings, name, value)
        else:
            try:
                delattr(settings, name)
            except AttributeError:
                pass
    _originals.clear()


def _convert(raw: str, like: Any) -> Any:
    if isinstance(like, bool):
        t = raw.strip().lower()
        if t in ("true", "1", "yes", "on"):
            return True
        if t in ("false", "0", "no", "off"):
            return False
        raise ValueError(f"{raw!r} is not a boolean")
    if isinstance(like, int):
        return int(raw.strip())
    if isinstance(like, float):
        return float(raw.strip())
    if isinstance(like, (list, tuple)):
        parts = [p.strip() for p in raw.split(",") if p.strip()]
        return type(like)(parts) if isinstance(like, tuple) else parts
    if isinstance(like, dict):
        value = json.loads(raw)
        if not isinstance(value, dict):
            raise ValueError(f"{raw!r} is not a JSON object")
        return value
    return raw


def _lookup(client: apolloconf.Client, key: str, namespace: Optional[str]) -> Optional[str]:
    if namespace is None:
        return client.get(key)
    try:
        return client.namespace(namespace).get(key)
    except apolloconf.NotWatchedError:
        return None


def _apply(client: apolloconf.Client, name: str, key: str, namespace: Optional[str]) -> bool:
    """Set (or restore) one setting from the client's current value; whether it changed."""
    if name not in _originals:
        had = hasattr(settings, name)
        _originals[name] = (had, getattr(settings, name, None))
    had, original = _originals[name]
    raw = _lookup(client, key, namespace)
    if raw is None:
        if not had:
            if not hasattr(settings, name):
                return False
            delattr(settings, name)
            return True
        value = original
    else:
        try:
            value = _convert(raw, original)
        except (ValueError, TypeError) as e:
            _log.warning("apolloconf: %s = %r from Apollo key %r does not fit: %s; kept as it was", name, raw, key, e)
            return False
    current = getattr(settings, name, _MISSING)
    if current is not _MISSING and current == value and type(current) is type(value):
        return False
    setattr(settings, name, value)
    return True


_MISSING = object()


def _send_setting_changed(name: str) -> None:
    setting_changed.send(
        sender=settings._wrapped.__class__,
        setting=name,
        value=getattr(settings, name, None),
        enter=True,
    )


def _apply_all(client: apolloconf.Client) -> List[str]:
    changed = [name for name, (key, ns) in _mapping().items() if _apply(client, name, key, ns)]
    for name in changed:
        _send_setting_changed(name)
    return changed


def _on_change(client: apolloconf.Client, event: Any) -> None:
    keys = {c.key for c in event.changes}
    changed: List[str] = []
    for name, (key, ns) in _mapping().items():
        if key in keys and (ns is None or ns == event.namespace):
            if _apply(client, name, key, ns):
                changed.append(name)
    for name in changed:
        _send_setting_changed(name)
    config_changed.send(sender=client, event=event, settings=changed)


class _Config:
    """Live values: ``config.NAME`` is the current value of a mapped Django setting, else
    of the Apollo key ``NAME`` (a raw string; ``AttributeError`` when absent).
    ``config.get(key, default)`` and ``config[key]`` read Apollo keys (merged lookup)."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        if name in _mapping():
            get_client()
            return getattr(settings, name)
        value = get_client().get(name)
        if value is None:
            raise AttributeError(f"no Django setting mapped as {name!r} and no Apollo key {name!r}")
        return value

    def get(self, key: str, default: Any = None) -> Any:
        return get_client().get(key, default)

    def __getitem__(self, key: str) -> str:
        return get_client()[key]

    def __contains__(self, key: str) -> bool:
        return key in get_client()

    @property
    def client(self) -> apolloconf.Client:
        return get_client()

    def __repr__(self) -> str:
        return "<apolloconf.django.config>"


#: The live accessor.
config = _Config()
