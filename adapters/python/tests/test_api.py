"""The public API of the installed wheel against the real test server."""

import asyncio
import logging
import threading
import time

import pytest

import apolloconf
from server import fast_timing, wait_until


def test_reads_are_raw_strings(make_client):
    c = make_client()
    assert c.get("greeting") == "hello"
    assert c.get("code") == "007"
    assert c.get("db.url") == "jdbc:mysql://db:3306/app?useSSL=false&a=b"
    assert c["timeout"] == "100"
    assert "timeout" in c and "nope" not in c
    assert c.get("nope") is None and c.get("nope", "d") == "d"
    with pytest.raises(KeyError):
        c["nope"]
    assert c.get_int("timeout") == 100 and c.get_int("nope", 5) == 5
    assert c.get_int("greeting", 7) == 7  # not an integer: the default
    assert c.get_float("timeout") == 100.0
    assert c.get_list("db.url", delimiter="&") == ["jdbc:mysql://db:3306/app?useSSL=false", "a=b"]
    assert sorted(c) == sorted(c.keys()) == ["code", "db.url", "greeting", "timeout"]
    assert len(c) == 4 and c.merged()["greeting"] == "hello"


def test_nothing_is_evaluated(server, make_client):
    server.publish({"evil": "__import__('os').system('echo pwned')", "flag": "TRUE", "j": '{"a": [1, 2]}'})
    c = make_client()
    assert c.get("evil") == "__import__('os').system('echo pwned')"
    assert c.get_bool("flag") is True
    assert c.get_json("j") == {"a": [1, 2]}


def test_namespace_mapping_and_yaml(server, make_client):
    server.admin("POST", "apps/SampleApp/namespaces", {"name": "db", "format": "yaml"})
    server.publish_content("db:\n  url: jdbc:x\n  pool: [1, 2]\n", "db.yaml")
    c = make_client(namespaces=["application", "db.yaml"])
    ns = c.namespace("db.yaml")
    assert ns["db.url"] == "jdbc:x" and ns["db.pool[1]"] == "2"
    assert ns.content.startswith("db:") and ns.format == "yaml"
    assert ns.source == "server" and ns.status == "loaded" and ns.release_key
    assert dict(ns.items()) == ns.to_dict() and len(ns) == 3
    from collections.abc import Mapping

    assert isinstance(ns, Mapping)
    assert c.get("db.url") == "jdbc:mysql://db:3306/app?useSSL=false&a=b"  # application first
    assert c.namespaces == ["application", "db.yaml"]
    with pytest.raises(apolloconf.NotWatchedError) as e:
        c.namespace("other")
    assert isinstance(e.value, KeyError) and e.value.code == "NOT_FOUND"


def test_bad_settings_are_typed_and_name_the_setting(server, tmp_path):
    base = dict(environ={}, server_properties=str(tmp_path / "none"), cache=False)
    cases = [
        (dict(config_service=server.url), "app_id"),
        (dict(app_id="A"), "meta_server"),
        (dict(app_id="A", config_service="not a url"), "meta_server/config_service"),
        (dict(app_id="A", config_service=server.url, namespaces=["a", "a"]), "namespaces"),
        (dict(app_id="A", config_service=server.url, timing={"noSuchKnob": 1}), "timing"),
        (dict(app_id="A", config_service=server.url, startup_timeout=-1), "startup_timeout"),
    ]
    for kw, setting in cases:
        app_id = kw.pop("app_id", None)
        with pytest.raises(apolloconf.ConfigError) as e:
            apolloconf.Client(app_id, **kw, **base)
        assert e.value.setting == setting, (kw, e.value)
        assert e.value.code == "CONFIG" and isinstance(e.value, ValueError)
        assert setting in str(e.value)


def test_tls_root_file_takes_paths(server, tmp_path):
    """`tls_root_file` takes a str, an os.PathLike, or an iterable of either (as the stub
    says): each reaches the native client, which reports the unreadable file by name."""
    base = dict(environ={}, server_properties=str(tmp_path / "none"), cache=False,
                config_service=server.url)
    missing = tmp_path / "no-such-ca.pem"
    for given in (str(missing), missing, [missing], (str(tmp_path / "x.pem"), missing)):
        with pytest.raises(apolloconf.ConfigError) as e:
            apolloconf.Client("A", tls_root_file=given, **base)
        assert e.value.setting == "tls_root", (given, e.value)
        assert "no-such-ca.pem" in str(e.value) or "x.pem" in str(e.value), e.value
    with pytest.raises(TypeError, match="tls_root_file must be paths"):
        apolloconf.Client("A", tls_root_file=[missing, 7], **base)


def test_java_environment_names_and_precedence(server, tmp_path):
    server.publish({"where": "dc1"}, cluster="dc1")
    props = tmp_path / "server.properties"
    props.write_text("app.id=FromFile\nidc=dc1\n")
    env = {"APP_ID": "SampleApp", "APOLLO_CONFIG_SERVICE": server.url, "APOLLO_CACHE_DIR": str(tmp_path / "c")}
    with apolloconf.Client(environ=env, server_properties=str(props), timing=fast_timing()) as c:
        s = c.settings
        assert s["app_id"] == "SampleApp"  # the environment beats server.properties
        assert s["data_center"] == "dc1" and s["cluster"] == "dc1"  # the file fills the rest
        assert s["config_service"] == server.url and s["secret_set"] is False
        assert c.get("where") == "dc1"
    # An explicit argument beats both.
    with apolloconf.Client("Other", environ=env, server_properties=str(props), cache=False) as c:
        assert c.settings["app_id"] == "Other"
    # {ENV}_META when nothing else names a server.
    env = {"APP_ID": "SampleApp", "ENV": "prod", "PRO_META": server.url}
    with apolloconf.Client(environ=env, server_properties=str(props), cache=False) as c:
        assert c.settings["meta_server"] == server.url
        assert c.get("where") == "dc1"  # discovered through the meta server


def test_listener_handle_decorator_and_filters(server, make_client):
    c = make_client()
    seen, only_db, decorated = [], [], []
    handle = c.on_change(seen.append)
    c.on_change(only_db.append, prefixes=["db."])

    @c.on_change(keys=["timeout"], namespace="application")
    def on_timeout(event):
        decorated.append(event)

    assert isinstance(on_timeout, apolloconf.Listener) and on_timeout.function is not None
    server.publish({"timeout": "200", "greeting": "hello", "db.url": "jdbc:y", "code": "007"})
    assert wait_until(lambda: len(seen) == 1 and len(only_db) == 1 and len(decorated) == 1)
    ev = seen[0]
    assert ev.namespace == "application" and ev.source == "server" and ev.release_key
    assert [(x.key, x.old, x.new, x.kind) for x in ev.changes] == [
        ("db.url", "jdbc:mysql://db:3306/app?useSSL=false&a=b", "jdbc:y", "modified"),
        ("timeout", "100", "200", "modified"),
    ]
    assert [x.key for x in only_db[0].changes] == ["db.url"]
    assert [x.key for x in decorated[0].changes] == ["timeout"]
    assert handle.remove() is True and handle.remove() is False
    server.publish({"timeout": "300"})
    assert wait_until(lambda: len(decorated) == 2)
    time.sleep(0.1)
    assert len(seen) == 1
    kinds = {x.key: x.kind for x in decorated[1].changes}
    assert kinds == {"timeout": "modified"}


def test_failing_listener_is_logged_counted_and_others_run(server, make_client, caplog):
    c = make_client()
    got = []

    def bad(event):
        raise RuntimeError("listener blew up")

    c.on_change(bad)
    c.on_change(got.append)
    with caplog.at_level(logging.ERROR, logger="apolloconf"):
        server.publish({"timeout": "1"})
        assert wait_until(lambda: got and c.metrics()["listener_errors"] == 1)
        assert wait_until(lambda: any("listener blew up" in r.getMessage() for r in caplog.records))
    rec = next(r for r in caplog.records if "listener blew up" in r.getMessage())
    assert rec.name == "apolloconf" and "Traceback" in rec.getMessage()
    server.publish({"timeout": "2"})
    assert wait_until(lambda: len(got) == 2 and c.metrics()["listener_errors"] == 2)


def test_listener_may_read_and_close(server, make_client):
    c = make_client()
    read = []
    done = threading.Event()

    def listener(event):
        read.append(c.get("timeout"))
        c.close()
        done.set()

    c.on_change(listener)
    server.publish({"timeout": "42"})
    assert done.wait(10)
    assert read == ["42"]
    assert wait_until(lambda: c.closed)
    assert c.get("timeout") == "42"  # values stay readable after close


def test_changes_iterator_and_end_at_close(server, make_client):
    c = make_client()
    it = c.changes(keys=["timeout"])
    assert it.get(0.05) is None
    server.publish({"timeout": "5"})
    ev = it.get(10)
    assert ev is not None and ev.changes[0].new == "5"
    ended = threading.Event()

    def consume():
        for _ in it:
            pass
        ended.set()

    t = threading.Thread(target=consume)
    t.start()
    c.close()
    assert ended.wait(5)
    t.join()


def test_changes_async(server, make_client):
    c = make_client()

    async def main():
        got = []

        async def consume():
            async for ev in c.changes_async(prefixes=["time"]):
                got.append(ev.changes[0].new)
                if len(got) == 2:
                    c.close()

        task = asyncio.ensure_future(consume())
        await asyncio.sleep(0.05)
        await asyncio.get_running_loop().run_in_executor(None, server.publish, {"timeout": "a"})
        await asyncio.sleep(0.2)
        await asyncio.get_running_loop().run_in_executor(None, server.publish, {"timeout": "b"})
        await asyncio.wait_for(task, 10)
        return got

    assert asyncio.run(main()) == ["a", "b"]


def test_metrics_watch_context_manager(server, make_client):
    c = make_client()
    m = c.metrics()
    assert m["configs"]["ok"] >= 1 and m["namespaces"]["application"]["status"] == "loaded"
    assert m["last_error"] is None and m["closed"] is False and m["services"]
    server.publish({"x": "1"}, namespace="extra")
    c.watch("extra")
    assert "extra" in c.namespaces
    assert wait_until(lambda: c.namespace("extra").get("x") == "1")
    with pytest.raises(apolloconf.ConfigError):
        c.watch("")
    with c:
        pass
    assert c.closed and c.metrics()["closed"] is True
    c.close()  # again: nothing


def unreachable_client(tmp_path, **kw):
    """A client of a config service nobody listens on (no environment, no
    server.properties, no cache)."""
    return apolloconf.Client(
        "SampleApp",
        config_service="http://127.0.0.1:9",
        environ={},
        server_properties=str(tmp_path / "none"),
        cache=False,
        timing=fast_timing(),
        **kw,
    )


def test_on_error_gets_typed_errors(tmp_path):
    errors = []
    c = unreachable_client(tmp_path, startup_timeout=0.5, on_error=errors.append)
    try:
        assert wait_until(lambda: errors)
        e = errors[0]
        assert isinstance(e, apolloconf.ApolloError) and e.code == "NETWORK"
        assert c.metrics()["last_error"]["code"] == "NETWORK"
        assert c.get("timeout") is None
    finally:
        c.close()


def test_logging_goes_to_the_apolloconf_logger(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="apolloconf"):
        c = unreachable_client(tmp_path, startup_timeout=0.3)
        c.close()
    assert any(r.name == "apolloconf" and r.levelno == logging.WARNING for r in caplog.records)


def test_secret_never_printed(server, tmp_path, caplog):
    secret = "s3cr3t-Value-9f1c"
    server.admin("POST", "apps/SampleApp/accesskeys", {"secret": "another-secret-entirely"})
    errors = []
    apolloconf._native.refresh_log_level()
    with caplog.at_level(logging.DEBUG, logger="apolloconf"):
        apolloconf._native.refresh_log_level()
        c = apolloconf.Client(
            "SampleApp",
            config_service=server.url,
            secret=secret,
            environ={},
            server_properties=str(tmp_path / "none"),
            cache_dir=str(tmp_path / "cache"),
            startup_timeout=1,
            timing=fast_timing(),
            on_error=errors.append,
        )
        assert wait_until(lambda: errors)
        texts = [repr(c), str(c.settings), str(c.metrics())] + [str(e) + repr(e.__dict__) for e in errors]
        c.close()
    apolloconf._native.refresh_log_level()
    texts += [r.getMessage() for r in caplog.records]
    assert errors[0].code == "UNAUTHORIZED"
    assert c.settings["secret_set"] is True
    for t in texts:
        assert secret not in t
    # Nor in a configuration error.
    with pytest.raises(apolloconf.ConfigError) as e:
        apolloconf.Client("", config_service=server.url, secret=secret, environ={}, server_properties="/nonexistent")
    assert secret not in str(e.value) and secret not in repr(e.value)


def test_dropping_the_last_reference_while_a_listener_waits(server, tmp_path):
    import gc

    started = threading.Event()

    def slow(event):
        started.set()
        time.sleep(0.3)

    c = apolloconf.Client("SampleApp", config_service=server.url, environ={}, cache=False,
                          server_properties=str(tmp_path / "none"), timing=fast_timing())
    c.on_change(slow)
    server.publish({"timeout": "1"})
    server.publish({"timeout": "2"})
    assert started.wait(10)
    t0 = time.monotonic()
    del c
    gc.collect()
    assert time.monotonic() - t0 < 5


def test_huge_timeouts_are_forever_not_a_crash(make_client):
    """Seconds beyond what a duration holds (1e19, 1e300) mean 'forever', never a panic."""
    c = make_client(startup_timeout=1e300)
    assert c.get("timeout") == "100"
    it = c.changes()
    c.close()
    assert it.get(timeout=1e19) is None
