//! Performing the core's requests with ureq.

use std::io::ErrorKind;

use apolloconf_core::{HttpRequest, TransportError, TransportErrorKind};

/// The largest body accepted (anything bigger is `TooLarge`).
pub(crate) const MAX_BODY: u64 = 16 * 1024 * 1024;

pub(crate) fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .user_agent(concat!("apolloconf/", env!("CARGO_PKG_VERSION")))
        .build()
        .new_agent()
}

fn classify(e: &ureq::Error) -> TransportErrorKind {
    match e {
        ureq::Error::Timeout(_) => TransportErrorKind::Timeout,
        ureq::Error::HostNotFound | ureq::Error::ConnectionFailed => TransportErrorKind::Connect,
        ureq::Error::BodyExceedsLimit(_) => TransportErrorKind::TooLarge,
        ureq::Error::Io(io) => match io.kind() {
            ErrorKind::ConnectionRefused | ErrorKind::AddrNotAvailable | ErrorKind::NotFound => {
                TransportErrorKind::Connect
            }
            ErrorKind::TimedOut | ErrorKind::WouldBlock => TransportErrorKind::Timeout,
            _ => TransportErrorKind::Io,
        },
        ureq::Error::Protocol(_) => TransportErrorKind::Io,
        _ => TransportErrorKind::Other,
    }
}

fn fail(e: &ureq::Error) -> TransportError {
    TransportError::new(classify(e), e.to_string())
}

/// Run one GET to completion: `(status, body)` or the transport failure.
pub(crate) fn perform(
    agent: &ureq::Agent,
    req: &HttpRequest,
) -> Result<(u16, Vec<u8>), TransportError> {
    let mut builder = agent
        .get(&req.url)
        .config()
        .http_status_as_error(false)
        .timeout_connect(Some(req.connect_timeout))
        .timeout_global(Some(req.connect_timeout + req.timeout))
        .build();
    for (name, value) in &req.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    let response = builder.call().map_err(|e| fail(&e))?;
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .into_with_config()
        .limit(MAX_BODY)
        .read_to_vec()
        .map_err(|e| fail(&e))?;
    Ok((status, body))
}
