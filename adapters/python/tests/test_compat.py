"""apolloconf.compat: the xhrg ApolloClient's API on the apolloconf engine."""

import threading

from apolloconf.compat import ApolloClient
from server import wait_until


def test_values_are_raw_and_listener_order(server, tmp_path):
    calls = []
    lock = threading.Lock()

    def listener(*args):
        action, namespace, key, new_value, *_ = args  # the Django pattern, unchanged
        with lock:
            calls.append((action, namespace, key, new_value))

    c = ApolloClient(server.url, "SampleApp", change_listener=listener, cache_dir=str(tmp_path))
    try:
        assert c.get_value("greeting") == "hello"
        assert c.get_value("code") == "007"
        assert c.get_value("db.url") == "jdbc:mysql://db:3306/app?useSSL=false&a=b"
        assert c.get_value("nope", default_val="d") == "d"
        server.publish({"timeout": "200", "greeting": "hello", "code": "007", "added": "x"})
        assert wait_until(lambda: len(calls) == 3)
        assert sorted(calls) == [
            ("add", "application", "added", "x"),
            ("delete", "application", "db.url", "jdbc:mysql://db:3306/app?useSSL=false&a=b"),
            ("update", "application", "timeout", "200"),
        ]
        assert c.get_value("timeout") == "200"
    finally:
        c.stop()


def test_lazy_namespace_and_fork_arguments(server, tmp_path):
    server.publish({"k": "v"}, namespace="other")
    seen = []
    c = ApolloClient(
        config_url=server.url,
        app_id="SampleApp",
        namespaces=["application"],
        value_change_listeners=[seen.append],
        enable_long_pool_updates=True,
        enable_scheduled_updates=False,
        cache_dir=str(tmp_path),
    )
    try:
        assert c.get_value("k", namespace="other") == "v"  # watched on first use, waited for
        server.publish({"k": "w"}, namespace="other")
        assert wait_until(lambda: seen)
        assert seen[0] == {"action": "update", "namespace": "other", "key": "k", "value": "w", "old_value": "v"}
        assert c.get_value("missing", "dflt", namespace="nowhere") == "dflt"
    finally:
        c.stop()


def test_no_hot_update_no_listener_calls(server, tmp_path):
    calls = []
    c = ApolloClient(server.url, "SampleApp", start_hot_update=False, change_listener=lambda *a: calls.append(a), cache_dir=str(tmp_path))
    try:
        server.publish({"timeout": "9"})
        assert wait_until(lambda: c.get_value("timeout") == "9")  # values stay live
        assert calls == []
    finally:
        c.stop()
