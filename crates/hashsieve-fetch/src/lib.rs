//! Fetching reported URLs without letting them reach our own network.
//!
//! A hotline fetches URLs that members of the public reported, so that the content can be
//! hashed and matched. Those URLs are hostile input: one that names `127.0.0.1`, a cloud
//! metadata service or an office printer, or a server that redirects there, must never make
//! us connect inside (server-side request forgery). This crate fetches them in a way that
//! cannot:
//!
//! - **Resolve, check, connect to what was checked.** A URL's host is resolved once; every
//!   address is classified ([`classify_address`]) and the connection goes to a checked
//!   address, never to a name a library would look up again. A DNS answer that changes
//!   between the check and the connection (rebinding) has nothing to change. A name with any
//!   forbidden address is refused as a whole: an attacker who controls the DNS answer could
//!   otherwise list a public address that fails next to a private one that a client falling
//!   back to the next address would reach.
//! - **Every redirect is a new URL**, resolved against the one that sent it and put through
//!   the same checks; a refusal says it came from a redirect.
//! - **Limits**: body size (announced and counted), timeouts per step and overall, allowed
//!   content types checked before the body is read, no compression.
//! - **Through a proxy** (HTTP `CONNECT` or SOCKS5), targets are still resolved and checked
//!   here, and the proxy is asked for the checked IP address, never the name.
//! - Fetched bytes stay in memory ([`bytes::Bytes`]); logs carry hosts, statuses, sizes and
//!   times, never content.
//!
//! The parts: [`address`] classifies addresses and names, [`policy`] holds the options
//! ([`FetchPolicy`], from TOML), [`Resolve`] is the name resolution a test or a hotline can
//! replace, [`Fetcher`] does the fetching, and [`FetchError`] says why a fetch failed.
//!
//! ```no_run
//! use hashsieve_fetch::{FetchError, FetchPolicy, Fetcher};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let fetcher = Fetcher::new(FetchPolicy::default())?;
//! match fetcher.fetch("https://images.example.org/reported.jpg").await {
//!     Ok(fetched) => println!("{} bytes of {:?}", fetched.body.len(), fetched.content_type),
//!     Err(FetchError::Forbidden { address, class, via_redirect, .. }) => {
//!         println!("refused {address:?}: {class} (after a redirect: {via_redirect})")
//!     }
//!     Err(other) => println!("not fetched: {other}"),
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # Why hyper's client connection API and not reqwest
//!
//! reqwest would save the request plumbing, but not every guarantee above holds through it.
//! Its `dns::Resolve` hook is not consulted for IP-literal hosts, so a redirect to
//! `http://127.0.0.1/` would pass a check made in the resolver; its redirect policy sees
//! URLs, not the addresses they will reach; and through a proxy it hands the proxy the host
//! name (`CONNECT name:443`, and remote resolution with `socks5h`), so the proxy, not us,
//! decides where the name goes. Here each hop is checked and connected by this crate, and
//! the pieces are the well-kept ones reqwest itself is built from: hyper's
//! `client::conn::http1`, hyper-util's `Tunnel` and `SocksV5` connectors (reqwest moved to
//! them in 2025), tokio-rustls with ring and `webpki-roots`, the `url` crate's WHATWG parser
//! (which turns `http://2130706433/`, `http://0x7f.1/` and `http://0177.0.0.1/` into
//! `127.0.0.1` before we see the host) and `ipnet` for the allow-list's networks.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod address;
mod connect;
mod error;
mod fetcher;
pub mod policy;
mod resolve;
mod target;

pub use address::{AddressVerdict, ForbiddenClass, classify_address, classify_host_name};
pub use error::{FetchError, PolicyError, TimeoutStage};
pub use fetcher::{Fetched, Fetcher, Posted};
pub use policy::{FetchPolicy, PortPolicy, ProxyConfig};
pub use resolve::{Resolve, SystemResolver};

/// The README's example, compiled with the doctests so that it cannot go stale.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
