//! From a URL to the addresses we may connect to: the checks run before every connection,
//! for the reported URL and for each redirect alike.
//!
//! In order: the scheme (http, https), no credentials, the port policy, the host name (cloud
//! metadata names), one resolution, then every resolved address against
//! [`classify_address`] unless the allow-list covers it. The result, a [`Target`], holds the
//! checked addresses, and they are all the connector ever uses.
//!
//! A name with several addresses is refused if any one of them is forbidden. Connecting to
//! "the first public one" would not be safe: an attacker who controls the DNS answer can
//! make the public address fail (or list it second) so that a client falling back to the
//! next address ends up inside, and a public service has no reason to publish a private
//! address next to its public ones.

use std::net::IpAddr;

use ipnet::IpNet;
use url::{Host, Url};

use crate::address::{AddressVerdict, classify_address, classify_host_name};
use crate::error::{FetchError, PolicyError, TimeoutStage};
use crate::policy::{FetchPolicy, PortPolicy};
use crate::resolve::Resolve;

/// A URL whose every address passed the checks.
#[derive(Debug)]
pub(crate) struct Target {
    /// The host as it appears in the (normalised) URL: a name, or an IP address (IPv6 without
    /// brackets).
    pub host: String,
    /// The address, when the host is one rather than a name (the TLS certificate is then
    /// checked against it).
    pub literal: Option<IpAddr>,
    pub port: u16,
    pub https: bool,
    /// Checked addresses, in the resolver's order, without duplicates.
    pub addresses: Vec<IpAddr>,
}

/// The policy's rules about targets, normalised once.
#[derive(Debug, Clone)]
pub(crate) struct TargetRules {
    ports: PortPolicy,
    allow_hosts: Vec<String>,
    allow_networks: Vec<IpNet>,
}

impl TargetRules {
    /// Normalises the allow-list the way URLs are normalised (IDNA, lowercase), so that an
    /// entry matches however a URL spells the name; an address listed as a host is taken as
    /// a one-address network.
    pub fn new(policy: &FetchPolicy) -> Result<TargetRules, PolicyError> {
        let mut allow_hosts = Vec::new();
        let mut allow_networks: Vec<IpNet> = policy.allow_networks.iter().map(IpNet::trunc).collect();
        for entry in &policy.allow_hosts {
            match Host::parse(entry) {
                Ok(Host::Domain(name)) => allow_hosts.push(normalise_name(&name)),
                Ok(Host::Ipv4(address)) => allow_networks.push(IpAddr::V4(address).into()),
                Ok(Host::Ipv6(address)) => allow_networks.push(IpAddr::V6(address).into()),
                Err(error) => {
                    return Err(PolicyError::Invalid(format!("allow_hosts entry {entry:?}: {error}")));
                }
            }
        }
        Ok(TargetRules { ports: policy.ports.clone(), allow_hosts, allow_networks })
    }

    /// Runs every check on `url` and resolves its host, once.
    pub async fn check<R: Resolve>(
        &self,
        url: &Url,
        resolver: &R,
        policy: &FetchPolicy,
        via_redirect: bool,
    ) -> Result<Target, FetchError> {
        let https = match url.scheme() {
            "http" => false,
            "https" => true,
            scheme => return Err(FetchError::UnsupportedScheme { scheme: scheme.into(), via_redirect }),
        };
        // `http://trusted.example@10.0.0.1/` reads as trusted.example to a person but goes to
        // 10.0.0.1, and credentials a reporter put in a URL are not ours to send anywhere.
        if !url.username().is_empty() || url.password().is_some() {
            return Err(FetchError::BadUrl { reason: "credentials in the URL".into(), via_redirect });
        }
        let port = url.port_or_known_default().unwrap_or(0);
        if !self.ports.allows(port) {
            return Err(FetchError::PortNotAllowed { port, via_redirect });
        }
        let (host, literal, addresses) = match url.host() {
            None => return Err(FetchError::BadUrl { reason: "no host".into(), via_redirect }),
            Some(Host::Ipv4(address)) => (address.to_string(), Some(address.into()), vec![address.into()]),
            Some(Host::Ipv6(address)) => (address.to_string(), Some(address.into()), vec![address.into()]),
            Some(Host::Domain(name)) => {
                let listed = self.allow_hosts.iter().any(|allowed| *allowed == normalise_name(name));
                if !listed && let AddressVerdict::Forbidden(class) = classify_host_name(name) {
                    return Err(FetchError::Forbidden {
                        host: name.into(),
                        address: None,
                        class,
                        via_redirect,
                    });
                }
                let addresses = resolve(resolver, name, policy).await?;
                if listed {
                    return Ok(Target { host: name.into(), literal: None, port, https, addresses });
                }
                (name.to_owned(), None, addresses)
            }
        };
        for address in &addresses {
            if self.allow_networks.iter().any(|network| network.contains(address)) {
                continue;
            }
            if let AddressVerdict::Forbidden(class) = classify_address(*address) {
                return Err(FetchError::Forbidden { host, address: Some(*address), class, via_redirect });
            }
        }
        Ok(Target { host, literal, port, https, addresses })
    }
}

async fn resolve<R: Resolve>(
    resolver: &R,
    name: &str,
    policy: &FetchPolicy,
) -> Result<Vec<IpAddr>, FetchError> {
    let limit = policy.connect_timeout();
    let resolved = tokio::time::timeout(limit, resolver.resolve(name))
        .await
        .map_err(|_| FetchError::Timeout { stage: TimeoutStage::Resolve, limit })?
        .map_err(|source| FetchError::Resolve { host: name.into(), source })?;
    let mut addresses: Vec<IpAddr> = Vec::with_capacity(resolved.len());
    for address in resolved {
        if !addresses.contains(&address) {
            addresses.push(address);
        }
    }
    if addresses.is_empty() {
        let source = std::io::Error::new(std::io::ErrorKind::NotFound, "no addresses");
        return Err(FetchError::Resolve { host: name.into(), source });
    }
    Ok(addresses)
}

fn normalise_name(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_owned()
}
