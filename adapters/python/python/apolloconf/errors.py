"""The exceptions of apolloconf. Messages never contain the access-key secret."""

from typing import Optional

__all__ = ["ApolloError", "ConfigError", "ClosedError", "NotWatchedError"]


class ApolloError(Exception):
    """Base class. ``code`` is one of the codes every apolloconf host uses: ``CONFIG``,
    ``CLOSED``, ``NOT_FOUND``, ``UNAUTHORIZED``, ``TIMEOUT``, ``NETWORK``,
    ``BAD_RESPONSE``, ``CACHE``. Errors the client keeps going through (handed to
    ``on_error``) also carry ``namespace`` and ``url`` (either may be ``None``)."""

    def __init__(
        self,
        message: str,
        setting: Optional[str] = None,
        code: str = "CONFIG",
        *,
        namespace: Optional[str] = None,
        url: Optional[str] = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.setting = setting
        self.code = code
        self.namespace = namespace
        self.url = url

    def __str__(self) -> str:
        return self.message


class ConfigError(ApolloError, ValueError):
    """A setting that cannot work; ``setting`` names it (``app_id``, ``meta_server``,
    ``config_service``, ``cluster``, ``namespaces``, ``timing``, ``startup_timeout``,
    ``server_properties``, ``tls_root``; ``meta_server/config_service`` for a server URL
    that does not parse)."""

    def __init__(self, message: str, setting: Optional[str] = None, code: str = "CONFIG", **kw) -> None:
        super().__init__(message, setting, code, **kw)

    def __str__(self) -> str:
        if self.setting:
            return f"{self.message} (setting: {self.setting})"
        return self.message


class ClosedError(ApolloError, RuntimeError):
    """The client is closed."""


class NotWatchedError(ApolloError, KeyError):
    """``client.namespace(name)`` for a namespace the client does not watch."""

    def __str__(self) -> str:
        return self.message
