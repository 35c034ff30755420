//! The test server as a child process, driven through its admin API over HTTP: the
//! examples that measure memory keep the server's out of their own.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// A running `apolloconf-testserver` (killed when dropped), or one started elsewhere.
pub struct Server {
    child: Option<Child>,
    pub url: String,
    agent: ureq::Agent,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(60)))
        .http_status_as_error(false)
        .build()
        .new_agent()
}

impl Server {
    /// Start `binary` on a free loopback port with a 60 s hold.
    pub fn start(binary: &str) -> Result<Server> {
        let mut child = Command::new(binary)
            .args(["--port", "0", "--hold", "60s"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let out = child.stdout.take().ok_or("no stdout")?;
        let mut line = String::new();
        BufReader::new(out).read_line(&mut line)?;
        let url = line
            .trim()
            .strip_prefix("listening ")
            .ok_or_else(|| format!("unexpected first line {line:?}"))?
            .to_string();
        Ok(Server {
            child: Some(child),
            url,
            agent: agent(),
        })
    }

    /// A server started by another process.
    #[allow(dead_code)]
    pub fn at(url: &str) -> Server {
        Server {
            child: None,
            url: url.to_string(),
            agent: agent(),
        }
    }

    /// An admin call; the answer's text, or an error for any status but 200.
    pub fn admin(&self, method: &str, path: &str, body: &str) -> Result<String> {
        let url = format!("{}/__admin/{path}", self.url);
        let mut resp = match method {
            "POST" => self
                .agent
                .post(&url)
                .header("content-type", "application/json")
                .send(body)?,
            "DELETE" => self.agent.delete(&url).call()?,
            _ => self.agent.get(&url).call()?,
        };
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .with_config()
            .limit(1 << 30)
            .read_to_string()?;
        if status != 200 {
            return Err(format!("{method} {path}: {status} {text}").into());
        }
        Ok(text)
    }

    /// Publish `configurations` (a JSON object's text) to `namespace` of `app`; returns
    /// the release message id.
    pub fn publish(&self, app: &str, namespace: &str, configurations: &str) -> Result<i64> {
        let text = self.admin(
            "POST",
            &format!("apps/{app}/clusters/default/namespaces/{namespace}/releases"),
            &format!(r#"{{"configurations":{configurations}}}"#),
        )?;
        let id = text
            .split("\"messageId\":")
            .nth(1)
            .and_then(|s| s.split(|c: char| c != '-' && !c.is_ascii_digit()).next())
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("no messageId in {text}"))?;
        Ok(id)
    }

    /// The length of the `/configs` body of `namespace` (default cluster) now.
    #[allow(dead_code)]
    pub fn configs_body_len(&self, app: &str, namespace: &str) -> Result<usize> {
        let url = format!("{}/configs/{app}/default/{namespace}", self.url);
        let mut resp = self.agent.get(&url).call()?;
        let body = resp.body_mut().with_config().limit(1 << 30).read_to_vec()?;
        Ok(body.len())
    }

    /// The next `times` requests to `endpoint` get exactly `body` (status 200).
    #[allow(dead_code)]
    pub fn answer_with(&self, endpoint: &str, body: &str, times: u32) -> Result<()> {
        let fault = serde_json::json!({
            "endpoint": endpoint,
            "action": {"type": "body", "status": 200, "body": body},
            "times": times,
        });
        self.admin("POST", "faults", &fault.to_string())?;
        Ok(())
    }

    /// Request times (epoch ms) in the server's log.
    #[allow(dead_code)]
    pub fn request_times(&self) -> Result<Vec<u64>> {
        let text = self.admin("GET", "requests", "")?;
        Ok(text
            .split("\"timeMs\":")
            .skip(1)
            .filter_map(|s| s.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok())
            .collect())
    }
}

/// A `/proc/self/status` field in KiB (`VmRSS`, `VmHWM`, …); 0 where there is none.
#[allow(dead_code)]
pub fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}
