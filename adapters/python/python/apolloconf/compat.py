"""A drop-in for the ``ApolloClient`` class people copy from xhrg-product/apollo-client-python
(and for the PyPI fork ``apollo-client-python``), on the apolloconf engine.

    from apolloconf.compat import ApolloClient

    client = ApolloClient(config_url="http://config-service:8080", app_id="SampleApp",
                          change_listener=on_change)
    client.get_value("timeout", default_val="100")
    client.stop()

What is the same: the constructor's arguments and defaults, ``get_value(key,
default_val=None, namespace='application')``, ``stop()``, and the listener called as
``(action, namespace, key, value)`` with ``add`` / ``update`` / ``delete`` (``value`` is
the new value, the old one for ``delete``), so ``action, namespace, key, new_value, *_ =
args`` works unchanged. The fork's arguments (``namespaces``, ``value_change_listeners``
receiving ``{"action", "namespace", "key", "value", "old_value"}``, ``start()``,
``add_value_change_listener``, the ``enable_*`` switches) are accepted too.

What differs: values are the raw strings the server holds, never passed through
``eval()`` (``hello``, ``007`` and JDBC URLs come back as written, and a value cannot run
code); updates arrive through one long poll for every namespace (no 2 s pause, no
10-minute heartbeat), with release keys, failover, signing and the Java client's cache
file; the changes of one update are reported sorted by key; listeners run on the
client's listener thread, and one that raises is logged and counted, not swallowed.
"""

import logging
import time
from typing import Any, Callable, Dict, Iterable, List, Optional

from . import Client, NotWatchedError

__all__ = ["ApolloClient"]

_ACTIONS = {"added": "add", "modified": "update", "deleted": "delete"}
_log = logging.getLogger("apolloconf")


class ApolloClient:
    """``ApolloClient(config_url, app_id, cluster='default', secret='',
    start_hot_update=True, change_listener=None, _notification_map=None, **fork_args)``"""

    def __init__(
        self,
        config_url: Optional[str] = None,
        app_id: Optional[str] = None,
        cluster: str = "default",
        secret: str = "",
        start_hot_update: bool = True,
        change_listener: Optional[Callable[..., Any]] = None,
        _notification_map: Optional[Dict[str, int]] = None,
        *,
        namespaces: Optional[Iterable[str]] = None,
        value_change_listeners: Optional[List[Callable[[Dict[str, Any]], Any]]] = None,
        ip: Optional[str] = None,
        label: Optional[str] = None,
        cache_dir: Optional[str] = None,
        startup_timeout: float = 5.0,
        # Accepted for the PyPI fork; updates are always live here.
        enable_scheduled_updates: bool = True,
        enable_long_pool_updates: bool = True,
        auto_update_enabled: bool = True,
        enable_dotenv: bool = False,
        **other: Any,
    ) -> None:
        if other:
            _log.debug("apolloconf.compat: ignoring arguments %s", sorted(other))
        if namespaces is None:
            namespaces = list(_notification_map) if _notification_map else ["application"]
        self.config_url = config_url
        self.app_id = app_id
        self.cluster = cluster
        self._startup_timeout = startup_timeout
        self._listener = change_listener
        self._value_listeners: List[Callable[[Dict[str, Any]], Any]] = list(value_change_listeners or [])
        self.client = Client(
            app_id,
            config_service=config_url,
            cluster=cluster or None,
            secret=secret or None,
            namespaces=list(namespaces),
            ip=ip,
            label=label,
            cache_dir=cache_dir,
            startup_timeout=startup_timeout,
        )
        self._handle = None
        if start_hot_update:
            self.start()

    def start(self) -> None:
        """Start calling the listeners (the values are live from construction on)."""
        if self._handle is None:
            self._handle = self.client.on_change(self._dispatch)

    def _dispatch(self, event: Any) -> None:
        for c in event.changes:
            action = _ACTIONS.get(c.kind, c.kind)
            value = c.old if c.kind == "deleted" else c.new
            if self._listener is not None:
                self._listener(action, event.namespace, c.key, value)
            for f in list(self._value_listeners):
                f({"action": action, "namespace": event.namespace, "key": c.key, "value": value, "old_value": c.old})

    def add_value_change_listener(self, listener: Callable[[Dict[str, Any]], Any]) -> None:
        """The fork's listener: called with ``{"action", "namespace", "key", "value",
        "old_value"}``."""
        self._value_listeners.append(listener)
        self.start()

    def get_value(self, key: str, default_val: Any = None, namespace: str = "application") -> Any:
        """The raw string value of ``key`` in ``namespace``, else ``default_val``. A
        namespace not asked for before is watched on first use (waiting for its first load
        at most ``startup_timeout``). For a non-properties namespace the key ``content``
        is its text."""
        try:
            ns = self._namespace(namespace)
        except Exception as e:  # noqa: BLE001 (the xhrg client returns the default on errors)
            _log.error("get_value failed: key %s, namespace %s: %s", key, namespace, e)
            return default_val
        value = ns.get(key)
        if value is None and key == "content" and ns.content is not None:
            value = ns.content
        return default_val if value is None else value

    def _namespace(self, namespace: str) -> Any:
        try:
            return self.client.namespace(namespace)
        except NotWatchedError:
            pass
        self.client.watch(namespace)
        deadline = time.monotonic() + self._startup_timeout
        ns = self.client.namespace(namespace)
        while ns.status == "loading" and time.monotonic() < deadline:
            time.sleep(0.005)
            ns = self.client.namespace(namespace)
        return ns

    def stop(self) -> None:
        """Stop the client (its threads end; values stay readable)."""
        self.client.close()

    def __enter__(self) -> "ApolloClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()
