//! Allowed fetches: what comes back, what is sent, the limits, TLS and the proxies.
//!
//! The origins listen on 127.0.0.1 under the name `origin.test`, which each test's policy
//! allow-lists (loopback is refused otherwise).

mod support;

use std::time::{Duration, Instant};

use hashsieve_fetch::{FetchError, FetchPolicy, Fetcher, PolicyError, ProxyConfig, TimeoutStage};
use hyper::StatusCode;
use support::{
    MapResolver, Origin, ProxyKind, ProxyRequest, Step, TestCa, TestProxy, image, path_of, quick_policy,
    redirect, respond, sample,
};

fn origin_fetcher(policy: FetchPolicy) -> Fetcher<MapResolver> {
    let policy = FetchPolicy { allow_hosts: vec!["origin.test".into()], ..policy };
    Fetcher::with_resolver(policy, MapResolver::new(&[("origin.test", &["127.0.0.1"])])).unwrap()
}

fn url(origin: &Origin, path: &str) -> String {
    format!("http://origin.test:{}{path}", origin.port())
}

#[tokio::test]
async fn a_sample_image_comes_back_byte_for_byte() {
    let bytes = std::fs::read(sample("q0122.jpg")).unwrap();
    let served = bytes.clone();
    let origin = Origin::plain("127.0.0.1", move |_| image(&served)).await;
    let fetched =
        origin_fetcher(quick_policy()).fetch(&url(&origin, "/reported/q0122.jpg?x=1#frag")).await.unwrap();
    assert_eq!(fetched.body, bytes);
    assert_eq!(fetched.status, StatusCode::OK);
    assert_eq!(fetched.content_type.as_deref(), Some("image/jpeg"));
    assert_eq!(fetched.remote, origin.address);
    assert!(fetched.redirects.is_empty());
    assert_eq!(fetched.final_url, fetched.url);
    // What was sent: origin-form target without the fragment, the name in Host, no
    // compression, our User-Agent.
    let heads = origin.heads();
    let head = heads[0].to_ascii_lowercase();
    assert!(head.starts_with("get /reported/q0122.jpg?x=1 http/1.1\r\n"), "{head}");
    assert!(head.contains(&format!("\r\nhost: origin.test:{}\r\n", origin.port())), "{head}");
    assert!(head.contains("\r\naccept-encoding: identity\r\n"), "{head}");
    assert!(head.contains("\r\nuser-agent: hashsieve-fetch/"), "{head}");
    // Debug shows the size, not the bytes.
    assert!(format!("{fetched:?}").contains(&format!("body_bytes: {}", bytes.len())));
}

#[tokio::test]
async fn redirects_between_allowed_urls_are_followed() {
    let port_holder = std::sync::Arc::new(std::sync::OnceLock::<u16>::new());
    let port = std::sync::Arc::clone(&port_holder);
    let origin = Origin::plain("127.0.0.1", move |head| match path_of(head) {
        "/a" => redirect("301 Moved Permanently", "b?from=a"),
        "/b?from=a" => redirect("302 Found", &format!("http://ORIGIN.test:{}/c", port.get().unwrap())),
        "/c" => redirect("303 See Other", "/d"),
        "/d" => image(b"final"),
        _ => respond("404 Not Found", &[], b""),
    })
    .await;
    port_holder.set(origin.port()).unwrap();
    let fetched = origin_fetcher(quick_policy()).fetch(&url(&origin, "/a")).await.unwrap();
    assert_eq!(&fetched.body[..], b"final");
    let redirects: Vec<&str> = fetched.redirects.iter().map(|url| url.as_str()).collect();
    assert_eq!(redirects, [url(&origin, "/b?from=a"), url(&origin, "/c"), url(&origin, "/d")]);
    assert_eq!(fetched.final_url.as_str(), url(&origin, "/d"));
    assert_eq!(fetched.url.as_str(), url(&origin, "/a"));
}

#[tokio::test]
async fn a_non_success_status_is_an_error_and_its_body_is_not_read() {
    let origin = Origin::plain("127.0.0.1", |_| {
        vec![
            Step::Send(
                b"HTTP/1.1 404 Not Found\r\nContent-Type: image/png\r\nContent-Length: 100000\r\n\r\n"
                    .to_vec(),
            ),
            // A body that never comes: reading it would run into the total timeout.
            Step::Wait(Duration::from_secs(10)),
        ]
    })
    .await;
    let started = Instant::now();
    let error = origin_fetcher(quick_policy()).fetch(&url(&origin, "/gone")).await.unwrap_err();
    assert!(matches!(&error, FetchError::Status { status: StatusCode::NOT_FOUND, .. }), "{error:?}");
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(error.to_string(), "origin.test answered 404 Not Found");
}

#[tokio::test]
async fn https_works_with_an_extra_root_and_checks_the_name() {
    let ca = TestCa::new();
    let directory = tempfile::tempdir().unwrap();
    let ca_pem = ca.write_pem(directory.path());
    let origin = Origin::tls("127.0.0.1", ca.acceptor(&["origin.test"]), |_| image(b"over tls")).await;
    let https = format!("https://origin.test:{}/img", origin.port());

    let trusting = FetchPolicy { extra_root_certificates: vec![ca_pem.clone()], ..quick_policy() };
    let fetched = origin_fetcher(trusting.clone()).fetch(&https).await.unwrap();
    assert_eq!(&fetched.body[..], b"over tls");
    assert_eq!(fetched.remote, origin.address);

    // Without the test CA, only the Web PKI roots: refused.
    let error = origin_fetcher(quick_policy()).fetch(&https).await.unwrap_err();
    assert!(matches!(&error, FetchError::Tls { host, .. } if host == "origin.test"), "{error:?}");
    assert!(error.to_string().contains("UnknownIssuer"), "{error}");

    // A trusted certificate for another name: refused, because the name in the URL is what
    // the certificate is checked against, not the address connected to.
    let other = Origin::tls("127.0.0.1", ca.acceptor(&["elsewhere.test"]), |_| image(b"wrong")).await;
    let error = origin_fetcher(trusting)
        .fetch(&format!("https://origin.test:{}/img", other.port()))
        .await
        .unwrap_err();
    assert!(matches!(error, FetchError::Tls { .. }), "{error:?}");
    assert!(error.to_string().contains("not valid for name \"origin.test\""), "{error}");
}

#[tokio::test]
async fn a_content_length_over_the_limit_is_refused_before_reading() {
    let origin = Origin::plain("127.0.0.1", |_| {
        vec![
            Step::Send(
                b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: 2000\r\n\r\n".to_vec(),
            ),
            // The body never comes: only a refusal from the header can end the fetch early.
            Step::Wait(Duration::from_secs(10)),
        ]
    })
    .await;
    let policy = FetchPolicy { max_response_bytes: 1000, ..quick_policy() };
    let started = Instant::now();
    let error = origin_fetcher(policy).fetch(&url(&origin, "/big")).await.unwrap_err();
    assert!(matches!(error, FetchError::TooLarge { limit: 1000, announced: Some(2000) }), "{error:?}");
    assert!(started.elapsed() < Duration::from_secs(1));
}

fn chunked(chunks: &[&[u8]]) -> Vec<Step> {
    let mut steps = vec![Step::Send(
        b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec(),
    )];
    for chunk in chunks {
        let mut bytes = format!("{:x}\r\n", chunk.len()).into_bytes();
        bytes.extend_from_slice(chunk);
        bytes.extend_from_slice(b"\r\n");
        steps.push(Step::Send(bytes));
    }
    steps.push(Step::Send(b"0\r\n\r\n".to_vec()));
    steps
}

#[tokio::test]
async fn a_chunked_body_is_cut_off_at_the_limit() {
    let origin = Origin::plain("127.0.0.1", |head| match path_of(head) {
        "/over" => chunked(&[&[1; 600], &[2; 600], &[3; 600]]),
        _ => chunked(&[&[1; 600], &[2; 400]]),
    })
    .await;
    let fetcher = origin_fetcher(FetchPolicy { max_response_bytes: 1000, ..quick_policy() });
    let error = fetcher.fetch(&url(&origin, "/over")).await.unwrap_err();
    assert!(matches!(error, FetchError::TooLarge { limit: 1000, announced: None }), "{error:?}");
    // Exactly at the limit is fine.
    let fetched = fetcher.fetch(&url(&origin, "/at-limit")).await.unwrap();
    assert_eq!(fetched.body.len(), 1000);
    assert_eq!(&fetched.body[598..602], &[1, 1, 2, 2]);
}

#[tokio::test]
async fn a_slow_first_byte_hits_the_response_headers_timeout() {
    let origin = Origin::plain("127.0.0.1", |_| {
        let mut steps = vec![Step::Wait(Duration::from_secs(5))];
        steps.extend(image(b"too late"));
        steps
    })
    .await;
    let policy = FetchPolicy { response_headers_timeout_ms: 300, ..quick_policy() };
    let started = Instant::now();
    let error = origin_fetcher(policy).fetch(&url(&origin, "/slow")).await.unwrap_err();
    assert!(matches!(error, FetchError::Timeout { stage: TimeoutStage::ResponseHeaders, .. }), "{error:?}");
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(300) && elapsed < Duration::from_secs(2), "{elapsed:?}");
}

#[tokio::test]
async fn a_trickling_body_hits_the_total_timeout() {
    let origin = Origin::plain("127.0.0.1", |_| {
        let mut steps = vec![Step::Send(
            b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: 100\r\n\r\n".to_vec(),
        )];
        for _ in 0..100 {
            steps.push(Step::Send(vec![0x42]));
            steps.push(Step::Wait(Duration::from_millis(50)));
        }
        steps
    })
    .await;
    let policy = FetchPolicy { total_timeout_ms: 400, ..quick_policy() };
    let started = Instant::now();
    let error = origin_fetcher(policy).fetch(&url(&origin, "/trickle")).await.unwrap_err();
    assert!(matches!(error, FetchError::Timeout { stage: TimeoutStage::Total, .. }), "{error:?}");
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(400) && elapsed < Duration::from_secs(2), "{elapsed:?}");
}

#[tokio::test]
async fn content_types_outside_the_policy_are_refused_before_the_body() {
    let origin = Origin::plain("127.0.0.1", |head| match path_of(head) {
        "/html" => respond("200 OK", &[("Content-Type", "text/html; charset=utf-8")], b"<html>"),
        "/untyped" => respond("200 OK", &[], b"\x89PNG"),
        "/png" => respond("200 OK", &[("Content-Type", "IMAGE/PNG")], b"\x89PNG"),
        _ => respond("200 OK", &[("Content-Type", "application/octet-stream")], b"\x89PNG"),
    })
    .await;
    let default = origin_fetcher(quick_policy());
    let error = default.fetch(&url(&origin, "/html")).await.unwrap_err();
    assert!(
        matches!(&error, FetchError::ContentType { content_type: Some(sent) } if sent == "text/html; charset=utf-8"),
        "{error:?}"
    );
    // No type counts as application/octet-stream, allowed by default.
    assert_eq!(default.fetch(&url(&origin, "/untyped")).await.unwrap().content_type, None);
    assert_eq!(&default.fetch(&url(&origin, "/png")).await.unwrap().body[..], b"\x89PNG");
    assert_eq!(&default.fetch(&url(&origin, "/bytes")).await.unwrap().body[..], b"\x89PNG");

    let images_only = origin_fetcher(FetchPolicy { content_types: vec!["image/*".into()], ..quick_policy() });
    let error = images_only.fetch(&url(&origin, "/untyped")).await.unwrap_err();
    assert!(matches!(error, FetchError::ContentType { content_type: None }), "{error:?}");
    let error = images_only.fetch(&url(&origin, "/bytes")).await.unwrap_err();
    assert!(matches!(error, FetchError::ContentType { .. }), "{error:?}");
}

#[tokio::test]
async fn the_port_policy_limits_the_ports_urls_may_name() {
    let origin = Origin::plain("127.0.0.1", |_| image(b"ok")).await;
    let policy = FetchPolicy { ports: hashsieve_fetch::PortPolicy::Only(vec![80, 443]), ..quick_policy() };
    let error = origin_fetcher(policy).fetch(&url(&origin, "/")).await.unwrap_err();
    assert!(
        matches!(error, FetchError::PortNotAllowed { port, via_redirect: false } if port == origin.port())
    );
    assert_eq!(origin.connections(), 0);
    let policy =
        FetchPolicy { ports: hashsieve_fetch::PortPolicy::Only(vec![origin.port()]), ..quick_policy() };
    assert_eq!(&origin_fetcher(policy).fetch(&url(&origin, "/")).await.unwrap().body[..], b"ok");
}

fn proxied(proxy: &TestProxy, kind: ProxyKind, credentials: Option<(&str, &str)>) -> FetchPolicy {
    let address = proxy.address.to_string();
    let username = credentials.map(|(username, _)| username.to_string());
    let password = credentials.map(|(_, password)| password.to_string());
    let config = match kind {
        ProxyKind::HttpConnect => ProxyConfig::Http { address, username, password },
        ProxyKind::Socks5 { .. } => ProxyConfig::Socks5 { address, username, password },
    };
    FetchPolicy { proxy: Some(config), ..quick_policy() }
}

#[tokio::test]
async fn an_http_proxy_is_asked_to_connect_to_the_checked_address() {
    let proxy = TestProxy::start(ProxyKind::HttpConnect).await;
    let origin = Origin::plain("127.0.0.1", |_| image(b"via connect")).await;
    let policy = proxied(&proxy, ProxyKind::HttpConnect, Some(("analyst", "s3cret")));
    let fetched = origin_fetcher(policy).fetch(&url(&origin, "/img")).await.unwrap();
    assert_eq!(&fetched.body[..], b"via connect");
    assert_eq!(fetched.remote, origin.address);
    assert_eq!(
        proxy.requests(),
        [ProxyRequest {
            target: format!("127.0.0.1:{}", origin.port()),
            credentials: Some("Basic YW5hbHlzdDpzM2NyZXQ=".into()),
        }]
    );
    // Through the tunnel the origin still sees its name in Host.
    assert!(origin.heads()[0].contains(&format!("\r\nhost: origin.test:{}\r\n", origin.port())));
}

#[tokio::test]
async fn https_through_an_http_proxy_checks_the_certificate_against_the_name() {
    let ca = TestCa::new();
    let directory = tempfile::tempdir().unwrap();
    let proxy = TestProxy::start(ProxyKind::HttpConnect).await;
    let origin = Origin::tls("127.0.0.1", ca.acceptor(&["origin.test"]), |_| image(b"tls via connect")).await;
    let policy = FetchPolicy {
        extra_root_certificates: vec![ca.write_pem(directory.path())],
        ..proxied(&proxy, ProxyKind::HttpConnect, None)
    };
    let fetched =
        origin_fetcher(policy).fetch(&format!("https://origin.test:{}/", origin.port())).await.unwrap();
    assert_eq!(&fetched.body[..], b"tls via connect");
    assert_eq!(
        proxy.requests(),
        [ProxyRequest { target: format!("127.0.0.1:{}", origin.port()), credentials: None }]
    );
}

#[tokio::test]
async fn a_socks5_proxy_is_asked_for_the_checked_address_with_credentials() {
    let proxy = TestProxy::start(ProxyKind::Socks5 { authenticate: true }).await;
    let origin = Origin::plain("127.0.0.1", |_| image(b"via socks")).await;
    let kind = ProxyKind::Socks5 { authenticate: true };
    let fetched = origin_fetcher(proxied(&proxy, kind, Some(("analyst", "s3cret"))))
        .fetch(&url(&origin, "/img"))
        .await
        .unwrap();
    assert_eq!(&fetched.body[..], b"via socks");
    assert_eq!(fetched.remote, origin.address);
    assert_eq!(
        proxy.requests(),
        [ProxyRequest {
            target: format!("127.0.0.1:{}", origin.port()),
            credentials: Some("analyst:s3cret".into())
        }]
    );

    // Wrong credentials: a proxy error, no request forwarded.
    let error = origin_fetcher(proxied(&proxy, kind, Some(("analyst", "guess"))))
        .fetch(&url(&origin, "/img"))
        .await
        .unwrap_err();
    assert!(matches!(error, FetchError::Proxy { .. }), "{error:?}");
    assert_eq!(origin.connections(), 1);
}

#[tokio::test]
async fn an_unreachable_proxy_is_a_proxy_error() {
    // Bind then drop, so nothing listens on the port.
    let address = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let policy = FetchPolicy {
        proxy: Some(ProxyConfig::Socks5 { address: address.to_string(), username: None, password: None }),
        ..quick_policy()
    };
    let origin = Origin::plain("127.0.0.1", |_| image(b"unreached")).await;
    let error = origin_fetcher(policy).fetch(&url(&origin, "/")).await.unwrap_err();
    assert!(matches!(&error, FetchError::Proxy { proxy, .. } if *proxy == address.to_string()), "{error:?}");
    assert!(error.to_string().contains("refused"), "{error}");
}

#[test]
fn a_policy_comes_from_toml_and_bad_values_are_refused() {
    let policy: FetchPolicy = toml::from_str(
        r#"
        max_response_bytes = 1_000_000
        total_timeout_ms = 30_000
        allow_hosts = ["Intake.Hotline.Example"]
        allow_networks = ["10.20.0.0/16", "fd00:1::/64"]
        ports = "any"
        proxy = { kind = "http", address = "10.0.0.8:3128", username = "hotline", password = "pw" }
        "#,
    )
    .unwrap();
    assert_eq!(policy.max_response_bytes, 1_000_000);
    assert_eq!(policy.allow_networks.len(), 2);
    assert!(!format!("{policy:?}").contains("\"pw\""), "the proxy password is redacted in Debug");
    Fetcher::new(policy).unwrap();

    assert!(toml::from_str::<FetchPolicy>("max_response_byte = 1").is_err(), "unknown fields are refused");
    for bad in [
        FetchPolicy { content_types: vec!["image".into()], ..FetchPolicy::default() },
        FetchPolicy { content_types: Vec::new(), ..FetchPolicy::default() },
        FetchPolicy { total_timeout_ms: 0, ..FetchPolicy::default() },
        FetchPolicy { user_agent: "line\nbreak".into(), ..FetchPolicy::default() },
        FetchPolicy { allow_hosts: vec!["bad host".into()], ..FetchPolicy::default() },
        FetchPolicy {
            proxy: Some(ProxyConfig::Http { address: "no-port".into(), username: None, password: None }),
            ..FetchPolicy::default()
        },
        FetchPolicy { extra_root_certificates: vec!["/nonexistent/ca.pem".into()], ..FetchPolicy::default() },
    ] {
        let error = Fetcher::new(bad.clone()).err();
        assert!(
            matches!(error, Some(PolicyError::Invalid(_) | PolicyError::RootCertificate { .. })),
            "{bad:?}: {error:?}"
        );
    }
}
