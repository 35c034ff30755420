//! Issue 11 for the command line: hostile values, closed pipes, secrets, credentials in
//! URLs, absurd timeouts, slow starts. The real binary against the real test server on
//! loopback.

use std::process::Command;
use std::time::Duration;

use apolloconf_testserver::TestServer;

mod common;

use common::{APP, cmd, run};

fn server(pairs: &[(&str, &str)]) -> TestServer {
    let s = TestServer::start().unwrap();
    s.admin()
        .publish(APP, "default", "application", pairs.iter().copied())
        .unwrap();
    s
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn any_timeout_is_accepted_without_a_panic() {
    let s = server(&[("timeout", "100")]);
    for t in ["1e19", "1e300", "inf", "18446744073709551616"] {
        let o = run(&["--timeout", t, "get", "timeout"], &s.url());
        assert_eq!(
            o.status.code(),
            Some(0),
            "--timeout {t}: {}",
            text(&o.stderr)
        );
        assert!(text(&o.stdout).contains("100"));
    }
}

/// The key values of issue 11: an escape sequence that clears the screen and retitles
/// the terminal, a bidi override, a C1 CSI, DEL, a quote.
const HOSTILE: &str = "a\u{1b}[2J\u{1b}]0;pwned\u{7}b\u{202e}c\u{9b}31md\u{7f}'e";

fn no_raw_controls(out: &str) {
    for c in out.chars() {
        assert!(
            c == '\n' || !(c.is_control() || ('\u{202a}'..='\u{202e}').contains(&c)),
            "raw {:?} in {out:?}",
            c
        );
    }
}

#[test]
fn control_characters_from_the_server_are_escaped() {
    let s = server(&[("evil", HOSTILE), ("k\u{1b}ey", "v"), ("plain", "中文 ok")]);
    // Table (for people): visible escapes, printable Unicode kept.
    let o = run(&["get"], &s.url());
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    no_raw_controls(&out);
    assert!(
        out.contains(r"a\u{1b}[2J\u{1b}]0;pwned\u{7}b\u{202e}c\u{9b}31md\u{7f}'e"),
        "{out}"
    );
    assert!(out.contains(r"k\u{1b}ey"), "{out}");
    assert!(out.contains("中文 ok"), "{out}");

    // Properties: \uXXXX escapes that read back as the same value.
    let o = run(&["--format", "properties", "get"], &s.url());
    let out = text(&o.stdout);
    no_raw_controls(&out);
    let back = apolloconf_core::properties::load(&out).unwrap();
    assert_eq!(back.get("evil"), Some(HOSTILE));
    assert_eq!(back.get("k\u{1b}ey"), Some("v"));
    assert_eq!(back.get("plain"), Some("中文 ok"));

    // JSON and YAML: escapes too, same values.
    let o = run(&["--format", "json", "get"], &s.url());
    let out = text(&o.stdout);
    no_raw_controls(&out);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["evil"], HOSTILE);
    let o = run(&["--format", "yaml", "get", "evil"], &s.url());
    let out = text(&o.stdout);
    no_raw_controls(&out);

    // env: a shell gives back the very value.
    let o = run(&["--format", "env", "get", "evil", "plain"], &s.url());
    let out = text(&o.stdout);
    no_raw_controls(&out);
    assert!(out.contains("EVIL=$'"), "{out}");
    let sh = Command::new("bash")
        .args([
            "-c",
            &format!("{out}\nprintf '%s' \"$EVIL\"; printf '|%s' \"$PLAIN\""),
        ])
        .output();
    match sh {
        Ok(sh) => assert_eq!(text(&sh.stdout), format!("{HOSTILE}|中文 ok")),
        Err(e) => eprintln!("NOTE: no bash to check the env quoting ({e})"),
    }

    // export writes the same escaped formats.
    let o = run(&["--format", "properties", "export"], &s.url());
    no_raw_controls(&text(&o.stdout));
}

/// Wait for `child` to exit, at most `limit`; kills it and fails otherwise.
fn exits_within(child: &mut std::process::Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn watch_ends_quietly_when_its_reader_goes_away() {
    use std::io::BufRead;
    let s = server(&[("timeout", "100")]);
    for format in ["table", "json"] {
        let mut child = cmd()
            .args([
                "--config-service",
                &s.url(),
                "--app-id",
                APP,
                "--no-cache",
                "--format",
                format,
                "watch",
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // `| head -1`: read one line, then close the pipe.
        let mut reader = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        reader.read_line(&mut first).unwrap();
        assert!(!first.is_empty());
        drop(reader);
        let status = exits_within(&mut child, Duration::from_secs(5));
        let mut err = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
        assert_eq!(status.code(), Some(0), "--format {format}: {err}");
        assert!(err.trim().is_empty(), "quietly: {err}");
    }
}

#[test]
fn watch_escapes_control_characters_for_people() {
    use std::io::BufRead;
    let s = server(&[("evil", HOSTILE)]);
    let mut child = cmd()
        .args([
            "--config-service",
            &s.url(),
            "--app-id",
            APP,
            "--no-cache",
            "watch",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let reader = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut seen = Vec::new();
    for line in reader.lines() {
        let line = line.unwrap();
        let done = line.starts_with("● ");
        seen.push(line);
        if done {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let all = seen.join("\n");
    no_raw_controls(&all);
    assert!(all.contains(r"a\u{1b}[2J"), "{all}");
}

#[test]
fn secret_file_and_a_warning_for_secret() {
    let s = server(&[("timeout", "100")]);
    s.admin()
        .add_access_key(APP, "s3cret", apolloconf_testserver::AccessKeyMode::Filter)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("secret");
    std::fs::write(&file, "s3cret\n").unwrap();
    let o = run(
        &["--secret-file", file.to_str().unwrap(), "get", "timeout"],
        &s.url(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("100"));
    assert!(text(&o.stderr).is_empty(), "{}", text(&o.stderr));

    // CRLF too; the wrong secret is refused (so the file is what signs).
    std::fs::write(&file, "s3cret\r\n").unwrap();
    let o = run(
        &["--secret-file", file.to_str().unwrap(), "get", "timeout"],
        &s.url(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    std::fs::write(&file, "wrong\n").unwrap();
    let o = run(
        &[
            "--timeout",
            "2",
            "--secret-file",
            file.to_str().unwrap(),
            "get",
            "timeout",
        ],
        &s.url(),
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));

    // A missing file is a usage error.
    let o = run(&["--secret-file", "/nonexistent/secret", "get"], &s.url());
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("/nonexistent/secret"));

    // --secret works, with a warning; the environment variable without one.
    let o = run(&["--secret", "s3cret", "get", "timeout"], &s.url());
    assert_eq!(o.status.code(), Some(0));
    let err = text(&o.stderr);
    assert!(
        err.contains("warning") && err.contains("--secret-file"),
        "{err}"
    );
    let o = cmd()
        .env("APOLLO_ACCESS_KEY_SECRET", "s3cret")
        .args(["--config-service", &s.url(), "--app-id", APP, "--no-cache"])
        .args(["get", "timeout"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(text(&o.stderr).is_empty(), "{}", text(&o.stderr));
}

#[test]
fn passwords_in_server_urls_never_reach_the_output() {
    let password = "hunter2";
    // Nothing listens: the error names the server.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("http://apollo:{password}@127.0.0.1:{port}");
    let o = run(&["--timeout", "2", "get", "timeout"], &url);
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o.stderr);
    assert!(err.contains("apollo:***@127.0.0.1"), "{err}");
    assert!(!err.contains(password), "{err}");
    // A URL that does not parse is quoted in the error.
    let o = run(&["get"], &format!("ftp://apollo:{password}@h"));
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(!err.contains(password), "{err}");
    // Verbose logs and the watch view.
    let s = server(&[("timeout", "100")]);
    let url = s
        .url()
        .replace("http://", &format!("http://apollo:{password}@"));
    let o = run(&["-vvv", "get", "timeout"], &url);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(!text(&o.stderr).contains(password));
    let mut child = cmd()
        .args([
            "--config-service",
            &url,
            "--app-id",
            APP,
            "--no-cache",
            "watch",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut reader = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut lines = String::new();
    for _ in 0..4 {
        std::io::BufRead::read_line(&mut reader, &mut lines).unwrap();
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(lines.contains("apollo:***@"), "{lines}");
    assert!(!lines.contains(password), "{lines}");
}

#[test]
fn a_start_up_timeout_says_what_loaded_and_what_did_not() {
    use apolloconf_testserver::{Endpoint, Fault, FaultAction};
    let s = server(&[("timeout", "100")]);
    s.admin()
        .publish(APP, "default", "second", [("other", "1")])
        .unwrap();
    // The first config request is held for 3 s; --timeout 0 gives up at once.
    s.admin()
        .inject_fault(Fault::new(Endpoint::Configs, FaultAction::Delay { ms: 3000 }).times(1));
    let o = run(&["--timeout", "0", "get", "timeout"], &s.url());
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("timed out after 0s"), "{err}");
    assert!(err.contains("not loaded: application"), "{err}");
    assert!(!err.contains("not found"), "{err}");

    // Two namespaces, one of them in the local cache, every answer held: the cached
    // one is named as loaded.
    let cache = tempfile::tempdir().unwrap();
    let dir = cache.path().join(APP).join("config-cache");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join(format!("{APP}+default+application.properties")),
        "#Persisted by DefaultConfig\n#now\ntimeout=100\n",
    )
    .unwrap();
    s.admin().inject_fault(Fault::new(
        Endpoint::Configs,
        FaultAction::Delay { ms: 3000 },
    ));
    let o = cmd()
        .args(["--config-service", &s.url(), "--app-id", APP])
        .args(["--cache-dir", cache.path().to_str().unwrap()])
        .args([
            "--timeout",
            "0.5",
            "-n",
            "application",
            "-n",
            "second",
            "get",
            "timeout",
        ])
        .output()
        .unwrap();
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("loaded application (from the local cache); not loaded: second"),
        "{err}"
    );
}
