//! The guard on outbound webhook targets (server-side request forgery): only `http` and
//! `https` URLs, and no address a request from inside the network must not reach —
//! loopback, private, shared (CGNAT), link-local (cloud metadata at 169.254.169.254
//! among them), multicast, broadcast, unspecified and documentation ranges, IPv4 as
//! IPv6 included — unless an operator allows a network explicitly
//! (`STAGEFLOW_WEBHOOK_ALLOWED_NETWORKS`, comma-separated CIDRs). Checked when a
//! subscription is saved and again at every delivery, on the addresses the connection
//! will really use (DNS may have changed).

use std::net::{IpAddr, SocketAddr};

pub use crate::domain::network::{allowed, Networks};
use std::sync::Arc;

/// How long a name may take to resolve.
const LOOKUP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// Why a target was refused; `code` is the field error code of the API.
#[derive(Debug, Clone, PartialEq)]
pub struct Refused {
    pub code: &'static str,
    pub message: String,
}

fn refused(code: &'static str, message: impl Into<String>) -> Refused {
    Refused {
        code,
        message: message.into(),
    }
}

/// The host and port of an `http(s)` URL without credentials or fragment.
pub fn target(url: &str) -> Result<(reqwest::Url, String, u16), Refused> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|_| refused("invalid_url", "give an absolute http:// or https:// URL"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(refused(
            "unsupported_scheme",
            "only http:// and https:// targets",
        ));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(refused(
            "invalid_url",
            "no credentials in the URL; the signature authenticates deliveries",
        ));
    }
    let host = match parsed.host() {
        Some(url::Host::Domain(d)) => d.to_owned(),
        Some(url::Host::Ipv4(v4)) => v4.to_string(),
        Some(url::Host::Ipv6(v6)) => v6.to_string(),
        None => return Err(refused("invalid_url", "the URL has no host")),
    };
    let port = parsed.port_or_known_default().unwrap_or(80);
    Ok((parsed, host, port))
}

/// Resolves `host` and keeps the addresses a delivery may use: all of them refused is
/// an error (so is a host that does not resolve).
pub async fn resolve(
    host: &str,
    port: u16,
    networks: &Networks,
) -> Result<Vec<SocketAddr>, Refused> {
    let found: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::time::timeout(LOOKUP_TIMEOUT, tokio::net::lookup_host((host, port)))
            .await
            .map_err(|_| {
                refused(
                    "unresolvable_host",
                    format!("{host} did not resolve in time"),
                )
            })?
            .map_err(|_| refused("unresolvable_host", format!("{host} does not resolve")))?
            .collect(),
    };
    if found.is_empty() {
        return Err(refused(
            "unresolvable_host",
            format!("{host} does not resolve"),
        ));
    }
    if let Some(bad) = found.iter().find(|a| !allowed(a.ip(), networks)) {
        return Err(refused(
            "forbidden_target",
            format!(
                "{host} resolves to {}, an address deliveries may not reach (loopback, private, link-local, …)",
                bad.ip()
            ),
        ));
    }
    Ok(found)
}

/// Checks a subscription's URL as it is saved.
pub async fn check(url: &str, networks: &Networks) -> Result<(), Refused> {
    let (_, host, port) = target(url)?;
    resolve(&host, port, networks).await.map(|_| ())
}

/// The HTTP client's resolver: every name a delivery connects to goes through the
/// guard, so a DNS answer that changed since the subscription was saved is caught.
pub struct GuardedResolver(pub Arc<Networks>);

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let networks = self.0.clone();
        Box::pin(async move {
            let addrs = resolve(name.as_str(), 0, &networks)
                .await
                .map_err(|r| -> Box<dyn std::error::Error + Send + Sync> { r.message.into() })?;
            let addrs: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_http_targets() {
        assert_eq!(
            target("ftp://example.com/x").unwrap_err().code,
            "unsupported_scheme"
        );
        assert_eq!(
            target("file:///etc/passwd").unwrap_err().code,
            "unsupported_scheme"
        );
        assert_eq!(
            target("https://u:p@example.com/").unwrap_err().code,
            "invalid_url"
        );
        assert_eq!(target("not a url").unwrap_err().code, "invalid_url");
        let (_, host, port) = target("https://hooks.example.com/in").unwrap();
        assert_eq!((host.as_str(), port), ("hooks.example.com", 443));
        let (_, host, port) = target("http://[::1]:9000/").unwrap();
        assert_eq!((host.as_str(), port), ("::1", 9000));
    }
}
