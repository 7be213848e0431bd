//! Turning a host name into addresses, behind a trait so tests (and a hotline with its own
//! resolver) can supply the answers.
//!
//! The fetcher asks exactly once per URL, checks every address it gets, and connects only to
//! those: nothing after the check looks the name up again, so a DNS answer that changes
//! between the check and the connection (rebinding) changes nothing.

use std::io;
use std::net::IpAddr;

/// Resolves host names for a [`Fetcher`](crate::Fetcher).
pub trait Resolve: Send + Sync + 'static {
    /// Every address `host` resolves to. `host` is a normalised DNS name (lowercase ASCII,
    /// IDNA applied); IP literals never reach the resolver.
    fn resolve(&self, host: &str) -> impl Future<Output = io::Result<Vec<IpAddr>>> + Send;
}

/// The operating system's resolver, through tokio's `lookup_host` (`getaddrinfo` on a blocking
/// thread), so `/etc/hosts` and the system's DNS settings apply.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

impl Resolve for SystemResolver {
    async fn resolve(&self, host: &str) -> io::Result<Vec<IpAddr>> {
        Ok(tokio::net::lookup_host((host, 0)).await?.map(|address| address.ip()).collect())
    }
}
