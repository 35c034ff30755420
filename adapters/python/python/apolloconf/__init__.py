"""apolloconf: a client for the Apollo configuration center.

The protocol engine is the Rust crate ``apolloconf`` (the same one the Rust, Node, Deno,
browser and worker hosts run); this package binds it. Reads never wait for IO, listeners
run on the client's own thread, and the cache file is the Java client's.

    import apolloconf

    client = apolloconf.Client("SampleApp", meta_server="http://apollo-meta:8080",
                               namespaces=["application", "datasource.yaml"])
    timeout = client.get_int("timeout", 100)

    @client.on_change(prefixes=["db."])
    def reload(event):
        for change in event.changes:
            print(event.namespace, change.key, change.old, change.new, change.kind)
"""

import json
import os
import threading
import weakref
from typing import Any, AsyncIterator, Callable, Iterable, Optional

from . import _native
from ._native import Change, ChangeEvent, ChangeIterator, Listener, Namespace
from .errors import ApolloError, ClosedError, ConfigError, NotWatchedError

__all__ = [
    "Client",
    "Namespace",
    "ChangeEvent",
    "Change",
    "ChangeIterator",
    "Listener",
    "ApolloError",
    "ConfigError",
    "ClosedError",
    "NotWatchedError",
    "TIMING_NAMES",
    "__version__",
]

import collections.abc as _abc

_abc.Mapping.register(Namespace)

__version__: str = _native.__version__
#: The protocol timing knobs ``Client(timing=...)`` accepts (values in ms, or per second
#: for the ``...Qps`` rates, ``jitterPercent`` 0-100).
TIMING_NAMES = tuple(_native.TIMING_NAMES)

_MISSING = object()

# Every open client of this process, for the fork hooks and the clean-up at exit.
_live: "weakref.WeakSet[Client]" = weakref.WeakSet()
_live_lock = threading.Lock()


class Client(_native.Client):
    """A running Apollo client.

    ``Client(app_id=None, *, meta_server=None, config_service=None, cluster=None,
    data_center=None, namespaces=("application",), label=None, ip=None, secret=None,
    cache_dir=None, cache=True, env=None, environ=None, server_properties=None,
    startup_timeout=5.0, timing=None, tls_root_file=None, tls_root_pem=None,
    on_error=None)``

    Every setting not given falls back to the Java client's environment variables and
    then to ``server.properties`` (see the README for the order). The constructor returns
    once every namespace is loaded or ``startup_timeout`` (seconds) passed; the
    interpreter is free meanwhile. A setting that cannot work raises
    :class:`ConfigError` naming it.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # noqa: D107 (built by __new__)
        self._async_queues: "set[Any]" = set()
        with _live_lock:
            _live.add(self)

    # ------------------------------------------------------------------ reads

    def get_json(self, key: str, default: Any = None) -> Any:
        """The value parsed as JSON (``json.loads``), ``default`` when absent. A value that
        is not JSON raises ``ValueError``."""
        raw = self.get(key)
        if raw is None:
            return default
        return json.loads(raw)

    # ------------------------------------------------------------------ changes

    def on_change(
        self,
        fn: Optional[Callable[[ChangeEvent], Any]] = None,
        *,
        keys: Optional[Iterable[str]] = None,
        prefixes: Optional[Iterable[str]] = None,
        namespace: Optional[str] = None,
    ) -> Any:
        """Call ``fn(event)`` for every change with a key of interest (all keys when
        neither ``keys`` nor ``prefixes`` is given; one namespace when ``namespace`` is).
        The event holds only the matching changes. Returns a :class:`Listener` (call
        ``.remove()`` to unregister it; calling it calls ``fn``). Without ``fn`` it is a
        decorator: ``@client.on_change(keys=["timeout"])``.

        Listeners run on the client's listener thread, one at a time, in registration
        order. One that raises is logged (``apolloconf`` logger, with the traceback) and
        counted in ``metrics()["listener_errors"]``; the others still run. A listener may
        call ``get()``, ``on_change()`` or ``close()``."""
        if fn is None:
            def decorator(f: Callable[[ChangeEvent], Any]) -> Listener:
                return self._add_listener(f, keys, prefixes, namespace)

            return decorator
        return self._add_listener(fn, keys, prefixes, namespace)

    def changes(
        self,
        *,
        keys: Optional[Iterable[str]] = None,
        prefixes: Optional[Iterable[str]] = None,
        namespace: Optional[str] = None,
    ) -> ChangeIterator:
        """A blocking iterator of change events (filtered as in :meth:`on_change`),
        from now on: ``for event in client.changes(): ...``. It ends when the client is
        closed; ``it.get(timeout)`` waits at most ``timeout`` seconds. Ctrl-C interrupts
        the wait."""
        return super().changes(keys, prefixes, namespace)

    async def changes_async(
        self,
        *,
        keys: Optional[Iterable[str]] = None,
        prefixes: Optional[Iterable[str]] = None,
        namespace: Optional[str] = None,
        max_queue: int = 0,
    ) -> AsyncIterator[ChangeEvent]:
        """An asyncio iterator of change events: ``async for event in
        client.changes_async(): ...``. Events are handed to the running loop with
        ``call_soon_threadsafe``; the iteration ends when the client is closed.
        ``max_queue`` > 0 drops the oldest events beyond that many unread ones."""
        import asyncio  # here: importing it costs ~0.1 s that sync users need not pay

        loop = asyncio.get_running_loop()
        queue: "asyncio.Queue[Any]" = asyncio.Queue()
        end = object()

        def put(item: Any) -> None:
            if max_queue > 0 and queue.qsize() >= max_queue and item is not end:
                try:
                    queue.get_nowait()
                except asyncio.QueueEmpty:
                    pass
            queue.put_nowait(item)

        def deliver(event: ChangeEvent) -> None:
            try:
                loop.call_soon_threadsafe(put, event)
            except RuntimeError:
                pass  # the loop is closed: nobody reads any more

        def finish() -> None:
            try:
                loop.call_soon_threadsafe(put, end)
            except RuntimeError:
                pass

        listener = self._add_listener(deliver, keys, prefixes, namespace)
        self._async_queues.add(finish)
        if self.closed:
            finish()
        try:
            while True:
                item = await queue.get()
                if item is end:
                    return
                yield item
        finally:
            listener.remove()
            self._async_queues.discard(finish)

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Stop every thread of the client and join it; values stay readable. Iterators
        of :meth:`changes` and :meth:`changes_async` end. Calling it again does nothing."""
        super().close()
        for finish in list(self._async_queues):
            finish()
        with _live_lock:
            _live.discard(self)

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


# ---------------------------------------------------------------------- fork and exit


def _before_fork() -> None:
    # Runs in the parent with the interpreter held; each client parks its threads (the
    # native call lets go of the interpreter while a listener finishes).
    for c in list(_live):
        try:
            c._prepare_fork()
        except Exception as e:  # noqa: BLE001 (a fork must never fail because of us)
            _log_fork_problem("before fork", e)


def _after_fork_in_parent() -> None:
    for c in list(_live):
        c._after_fork_in_parent()


def _after_fork_in_child() -> None:
    global _live_lock
    _live_lock = threading.Lock()  # the parent's lock may have been held by another thread
    for c in list(_live):
        try:
            c._after_fork_in_child()
        except Exception as e:  # noqa: BLE001
            _log_fork_problem("in the child", e)


def _log_fork_problem(where: str, e: Exception) -> None:
    import logging

    logging.getLogger("apolloconf").error("apolloconf: fork handling %s failed: %s", where, e)


def _close_all() -> None:
    for c in list(_live):
        try:
            c.close()
        except Exception:  # noqa: BLE001 (shutting down)
            pass


if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_before_fork,
        after_in_parent=_after_fork_in_parent,
        after_in_child=_after_fork_in_child,
    )

# Close open clients when the interpreter exits: before non-daemon threads are joined
# (so a thread blocked in `for event in client.changes()` ends), else at exit.
_register_exit = getattr(threading, "_register_atexit", None)
try:
    if _register_exit is None:
        raise AttributeError
    _register_exit(_close_all)
except Exception:  # noqa: BLE001
    import atexit

    atexit.register(_close_all)
