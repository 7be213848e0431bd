//! Hostile targets: every URL here must be refused, with the class that says why, and —
//! where a listener can see it — without a connection being made.
//!
//! Names are answered by a fixed map (and `localhost` by the system's resolver). The refused
//! addresses outside loopback are never connected to: refusal happens before any socket is
//! opened, which the loopback listeners below observe.

mod support;

use std::time::Duration;

use hashsieve_fetch::{FetchError, FetchPolicy, Fetcher, ForbiddenClass, ProxyConfig};
use support::{MapResolver, Origin, ProxyKind, TestProxy, image, path_of, quick_policy, redirect};

use ForbiddenClass::*;

/// How a hostile URL must be refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    Class(ForbiddenClass),
    BadUrl,
    Scheme,
    Port,
}

fn refusal_of(error: &FetchError) -> Option<Refusal> {
    match error {
        FetchError::Forbidden { class, .. } => Some(Refusal::Class(*class)),
        FetchError::BadUrl { .. } => Some(Refusal::BadUrl),
        FetchError::UnsupportedScheme { .. } => Some(Refusal::Scheme),
        FetchError::PortNotAllowed { .. } => Some(Refusal::Port),
        _ => None,
    }
}

fn hostile_names() -> MapResolver {
    MapResolver::new(&[
        ("internal.test", &["10.1.2.3"]),
        ("loop.test", &["127.0.0.2"]),
        ("v6-loop.test", &["::1"]),
        ("metadata-alias.test", &["169.254.169.254"]),
        ("cgnat.test", &["100.64.12.34"]),
        ("ula.test", &["fd12:3456:789a::1"]),
        ("mapped.test", &["::ffff:10.0.0.1"]),
        ("nat64.test", &["64:ff9b::a9fe:a9fe"]),
        // One public and one private answer: refused as a whole.
        ("mixed.test", &["93.184.216.34", "10.0.0.5"]),
        ("mixed-v6.test", &["2606:2800:220:1:248:1893:25c8:1946", "fe80::1"]),
    ])
}

#[tokio::test]
async fn hostile_targets_are_refused_with_their_class() {
    use Refusal::{BadUrl, Class, Port, Scheme};
    let table: &[(&str, Refusal)] = &[
        // IPv4 classes.
        ("http://127.0.0.1/", Class(Loopback)),
        ("http://127.255.255.254:8080/admin", Class(Loopback)),
        ("http://0.0.0.0/", Class(Unspecified)),
        ("http://0.1.2.3/", Class(ThisNetwork)),
        ("http://10.0.0.1/", Class(Private)),
        ("http://172.16.5.4/", Class(Private)),
        ("http://172.31.255.255/", Class(Private)),
        ("http://192.168.1.1/", Class(Private)),
        ("http://100.64.0.1/", Class(SharedAddressSpace)),
        ("http://169.254.1.1/", Class(LinkLocal)),
        ("http://224.0.0.1/", Class(Multicast)),
        ("http://255.255.255.255/", Class(Broadcast)),
        ("http://240.0.0.1/", Class(Reserved)),
        ("http://192.0.2.1/", Class(Documentation)),
        ("http://198.18.0.1/", Class(Benchmarking)),
        ("http://192.0.0.8/", Class(IetfProtocol)),
        // Other spellings of IPv4 addresses, normalised by the WHATWG parser.
        ("http://2130706433/", Class(Loopback)),
        ("http://0x7f.0.0.1/", Class(Loopback)),
        ("http://0177.0.0.1/", Class(Loopback)),
        ("http://127.1/", Class(Loopback)),
        ("http://0x7f000001/", Class(Loopback)),
        ("http://0/", Class(Unspecified)),
        ("http://012.0.0.1/", Class(Private)),
        ("http://3232235777/", Class(Private)),
        ("http://127.0.0.1./", Class(Loopback)),
        // IPv6 forms.
        ("http://[::1]/", Class(Loopback)),
        ("http://[0:0:0:0:0:0:0:1]:8080/", Class(Loopback)),
        ("http://[::]/", Class(Unspecified)),
        ("http://[::ffff:127.0.0.1]/", Class(Ipv4Mapped)),
        ("http://[0:0:0:0:0:ffff:7f00:1]/", Class(Ipv4Mapped)),
        ("http://[::ffff:a9fe:a9fe]/", Class(Ipv4Mapped)),
        ("http://[::127.0.0.1]/", Class(Ipv4Compatible)),
        ("http://[::ffff:0:7f00:1]/", Class(Ipv4Translated)),
        ("http://[64:ff9b::a00:1]/", Class(Ipv4Translated)),
        ("http://[64:ff9b:1::a00:1]/", Class(Ipv4Translated)),
        ("http://[2002:c0a8:101::1]/", Class(SixToFour)),
        ("http://[2002:7f00:1::1]/", Class(SixToFour)),
        ("http://[2001:0:a00:1::f7f7:f7f7]/", Class(Teredo)),
        ("http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/", Class(Teredo)),
        ("http://[fe80::1]/", Class(LinkLocal)),
        ("http://[fe80::1%25eth0]/", BadUrl),
        ("http://[fd12:3456::1]/", Class(UniqueLocal)),
        ("http://[fc00::1]/", Class(UniqueLocal)),
        ("http://[fec0::1]/", Class(SiteLocal)),
        ("http://[ff02::1]/", Class(Multicast)),
        ("http://[2001:db8::1]/", Class(Documentation)),
        ("http://[100::1]/", Class(Reserved)),
        // Cloud metadata, by address and by name.
        ("http://169.254.169.254/latest/meta-data/", Class(CloudMetadata)),
        ("http://2852039166/latest/meta-data/", Class(CloudMetadata)),
        ("http://0xa9.0xfe.0xa9.0xfe/", Class(CloudMetadata)),
        ("http://169.254.170.2/v2/credentials", Class(CloudMetadata)),
        ("http://[fd00:ec2::254]/latest/meta-data/", Class(CloudMetadata)),
        ("http://100.100.100.200/latest/meta-data/", Class(CloudMetadata)),
        ("http://168.63.129.16/machine", Class(CloudMetadata)),
        ("http://metadata.google.internal/computeMetadata/v1/", Class(CloudMetadata)),
        ("http://METADATA.Google.Internal./computeMetadata/v1/", Class(CloudMetadata)),
        ("http://metadata/computeMetadata/v1/", Class(CloudMetadata)),
        ("http://instance-data/latest/", Class(CloudMetadata)),
        // Names resolving inside.
        ("http://internal.test/", Class(Private)),
        ("http://loop.test/", Class(Loopback)),
        ("http://v6-loop.test/", Class(Loopback)),
        ("http://metadata-alias.test/latest/meta-data/", Class(CloudMetadata)),
        ("http://cgnat.test/", Class(SharedAddressSpace)),
        ("https://ula.test/", Class(UniqueLocal)),
        ("http://mapped.test/", Class(Ipv4Mapped)),
        ("http://nat64.test/", Class(Ipv4Translated)),
        ("http://mixed.test/", Class(Private)),
        ("http://mixed-v6.test/", Class(LinkLocal)),
        // Not http(s), credentials, port 0, not a URL.
        ("file:///etc/passwd", Scheme),
        ("gopher://127.0.0.1:70/_GET", Scheme),
        ("ftp://internal.test/", Scheme),
        ("dict://127.0.0.1:11211/stat", Scheme),
        ("http://user:pass@images.test/", BadUrl),
        ("http://images.test@127.0.0.1/", BadUrl),
        ("http://127.0.0.1:0/", Port),
        ("not a url", BadUrl),
        ("http://[::1/", BadUrl),
    ];
    assert!(table.len() >= 30);
    let resolver = hostile_names();
    let fetcher = Fetcher::with_resolver(quick_policy(), resolver.clone()).unwrap();
    let mut wrong = Vec::new();
    for (url, expected) in table {
        match fetcher.fetch(url).await {
            Ok(fetched) => wrong.push(format!("{url}: fetched {fetched:?}")),
            Err(error) if refusal_of(&error) == Some(*expected) => {
                if let FetchError::Forbidden { via_redirect: true, .. } = error {
                    wrong.push(format!("{url}: refused as if redirected"));
                }
            }
            Err(error) => wrong.push(format!("{url}: expected {expected:?}, got {error:?}")),
        }
    }
    assert!(wrong.is_empty(), "{} of {} wrong:\n{}", wrong.len(), table.len(), wrong.join("\n"));
    // Address literals never reach the resolver, nor do refused names or schemes.
    let mut asked = resolver.asked();
    asked.sort();
    asked.dedup();
    assert_eq!(
        asked,
        [
            "cgnat.test",
            "internal.test",
            "loop.test",
            "mapped.test",
            "metadata-alias.test",
            "mixed-v6.test",
            "mixed.test",
            "nat64.test",
            "ula.test",
            "v6-loop.test",
        ]
    );
}

#[tokio::test]
async fn refusal_names_the_address_and_class_but_no_path() {
    let fetcher = Fetcher::with_resolver(quick_policy(), hostile_names()).unwrap();
    let error = fetcher.fetch("http://mixed.test/secret-path?q=1").await.unwrap_err();
    let message = error.to_string();
    assert_eq!(message, "refused mixed.test at 10.0.0.5: private (RFC 1918) address");
    let error = fetcher.fetch("http://metadata.google.internal/").await.unwrap_err();
    assert!(matches!(&error, FetchError::Forbidden { address: None, class: CloudMetadata, .. }), "{error:?}");
}

#[tokio::test]
async fn a_name_resolving_to_loopback_is_never_connected_to() {
    let listener = Origin::plain("127.0.0.2", |_| image(b"never served")).await;
    let resolver = MapResolver::new(&[("rebind.test", &["127.0.0.2"])]);
    let url = format!("http://rebind.test:{}/", listener.port());

    let fetcher = Fetcher::with_resolver(quick_policy(), resolver.clone()).unwrap();
    let error = fetcher.fetch(&url).await.unwrap_err();
    assert!(matches!(error, FetchError::Forbidden { class: Loopback, .. }), "{error:?}");
    // The listener would have seen a connection had the check come after connecting.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(listener.connections(), 0);

    // The same fetch with that address allow-listed does reach it: the observation works.
    let policy = FetchPolicy { allow_networks: vec!["127.0.0.2/32".parse().unwrap()], ..quick_policy() };
    let fetched = Fetcher::with_resolver(policy, resolver).unwrap().fetch(&url).await.unwrap();
    assert_eq!(&fetched.body[..], b"never served");
    assert_eq!(listener.connections(), 1);
}

#[tokio::test]
async fn localhost_through_the_system_resolver_is_refused_without_connecting() {
    let listener = Origin::plain("127.0.0.1", |_| image(b"never served")).await;
    let fetcher = Fetcher::new(quick_policy()).unwrap();
    let error = fetcher.fetch(&format!("http://localhost:{}/", listener.port())).await.unwrap_err();
    assert!(
        matches!(&error, FetchError::Forbidden { host, class: Loopback, address: Some(address), .. }
            if host == "localhost" && address.is_loopback()),
        "{error:?}"
    );
    assert_eq!(listener.connections(), 0);
}

/// An allowed origin (allow-listed by name for these tests only) whose paths redirect into
/// forbidden space.
async fn redirecting_origin(loopback_listener_port: u16) -> Origin {
    Origin::plain("127.0.0.1", move |head| match path_of(head) {
        "/to-private" => redirect("302 Found", "http://10.0.0.1/"),
        "/to-v6-loopback" => redirect("302 Found", "http://[::1]/"),
        "/to-metadata" => redirect("301 Moved Permanently", "http://169.254.169.254/latest/meta-data"),
        "/to-metadata-name" => redirect("307 Temporary Redirect", "http://metadata.google.internal/"),
        "/to-private-name" => redirect("308 Permanent Redirect", "//internal.test/images/a.jpg"),
        "/to-mapped" => redirect("303 See Other", "http://[::ffff:7f00:2]/"),
        "/to-listener" => redirect("302 Found", &format!("http://127.0.0.2:{loopback_listener_port}/")),
        "/to-file" => redirect("302 Found", "file:///etc/passwd"),
        "/to-gopher" => redirect("302 Found", "gopher://127.0.0.1:6379/_FLUSHALL"),
        "/to-credentials" => redirect("302 Found", "http://admin:admin@origin.test/"),
        path if path.starts_with("/hop/") => {
            let hop: u32 = path["/hop/".len()..].parse().unwrap();
            redirect("302 Found", &format!("/hop/{}", hop + 1))
        }
        _ => image(b"not a redirect"),
    })
    .await
}

fn origin_policy() -> FetchPolicy {
    FetchPolicy { allow_hosts: vec!["origin.test".into()], ..quick_policy() }
}

#[tokio::test]
async fn redirects_into_forbidden_space_are_refused_as_redirects() {
    let listener = Origin::plain("127.0.0.2", |_| image(b"never served")).await;
    let origin = redirecting_origin(listener.port()).await;
    let resolver = MapResolver::new(&[("origin.test", &["127.0.0.1"]), ("internal.test", &["10.9.8.7"])]);
    let fetcher = Fetcher::with_resolver(origin_policy(), resolver).unwrap();
    let base = format!("http://origin.test:{}", origin.port());

    // The origin itself is fetched, so the refusals below are the redirects'.
    assert_eq!(&fetcher.fetch(&format!("{base}/plain")).await.unwrap().body[..], b"not a redirect");

    for (path, class, address) in [
        ("/to-private", Private, Some("10.0.0.1")),
        ("/to-v6-loopback", Loopback, Some("::1")),
        ("/to-metadata", CloudMetadata, Some("169.254.169.254")),
        ("/to-metadata-name", CloudMetadata, None),
        ("/to-private-name", Private, Some("10.9.8.7")),
        ("/to-mapped", Ipv4Mapped, Some("::ffff:127.0.0.2")),
        ("/to-listener", Loopback, Some("127.0.0.2")),
    ] {
        let error = fetcher.fetch(&format!("{base}{path}")).await.unwrap_err();
        let expected_address = address.map(|text| text.parse().unwrap());
        assert!(
            matches!(&error, FetchError::Forbidden { class: got, address: got_address, via_redirect: true, .. }
                if *got == class && *got_address == expected_address),
            "{path}: {error:?}"
        );
        assert!(error.to_string().starts_with("redirect: refused"), "{path}: {error}");
    }
    for path in ["/to-file", "/to-gopher"] {
        let error = fetcher.fetch(&format!("{base}{path}")).await.unwrap_err();
        assert!(
            matches!(error, FetchError::UnsupportedScheme { via_redirect: true, .. }),
            "{path}: {error:?}"
        );
    }
    let error = fetcher.fetch(&format!("{base}/to-credentials")).await.unwrap_err();
    assert!(matches!(error, FetchError::BadUrl { via_redirect: true, .. }), "{error:?}");

    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(listener.connections(), 0, "the redirect target on 127.0.0.2 was connected to");
    // One connection per fetch above: each redirect's target was refused before connecting.
    assert_eq!(origin.connections(), 1 + 7 + 2 + 1);
}

#[tokio::test]
async fn a_redirect_chain_longer_than_the_limit_is_refused() {
    let origin = redirecting_origin(1).await;
    let resolver = MapResolver::new(&[("origin.test", &["127.0.0.1"])]);
    let policy = FetchPolicy { max_redirects: 3, ..origin_policy() };
    let fetcher = Fetcher::with_resolver(policy, resolver).unwrap();
    let error = fetcher.fetch(&format!("http://origin.test:{}/hop/0", origin.port())).await.unwrap_err();
    assert!(matches!(error, FetchError::TooManyRedirects { limit: 3 }), "{error:?}");
    // The first request and three redirects followed; the fourth redirect is not.
    let paths: Vec<String> = origin.heads().iter().map(|head| path_of(head).to_string()).collect();
    assert_eq!(paths, ["/hop/0", "/hop/1", "/hop/2", "/hop/3"]);
}

#[tokio::test]
async fn a_forbidden_target_is_refused_before_the_proxy_is_contacted() {
    for kind in [ProxyKind::HttpConnect, ProxyKind::Socks5 { authenticate: false }] {
        let proxy = TestProxy::start(kind).await;
        let config = match kind {
            ProxyKind::HttpConnect => {
                ProxyConfig::Http { address: proxy.address.to_string(), username: None, password: None }
            }
            ProxyKind::Socks5 { .. } => {
                ProxyConfig::Socks5 { address: proxy.address.to_string(), username: None, password: None }
            }
        };
        let policy = FetchPolicy { proxy: Some(config), ..quick_policy() };
        let fetcher = Fetcher::with_resolver(policy, hostile_names()).unwrap();
        for url in
            ["http://internal.test/", "https://loop.test/", "http://169.254.169.254/", "http://[::1]:8080/"]
        {
            let error = fetcher.fetch(url).await.unwrap_err();
            assert!(matches!(error, FetchError::Forbidden { .. }), "{kind:?} {url}: {error:?}");
        }
        assert_eq!(proxy.connections(), 0, "{kind:?}");
    }
}
