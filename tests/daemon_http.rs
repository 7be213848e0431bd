//! End-to-end tests of `hashsieved` over HTTP, driving the real binary with a plain TCP client:
//! matching content and hashes (against `md5sum` as the reference digest), tokens and roles,
//! list changes seen by the next request, limits, bad clients, and SIGTERM.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use hashsieve_core::hashes::HashKind;
use hashsieve_core::import::ImportedEntry;
use hashsieve_core::index::dir::IndexDir;
use hashsieve_core::index::{IndexBuilder, ListOptions};
use serde_json::Value;

mod daemon_support;
use daemon_support::{
    Hashsieved, Response, md5sum, parse_openmetrics, pipe, request, request_with, sample, sha256_hex,
};

const MATCH_TOKEN: &str = "match-token-for-tests";
const ADMIN_TOKEN: &str = "admin-token-for-tests";
const LIMITED_TOKEN: &str = "limited-token-for-tests";
const REPORT_TOKEN: &str = "report-token-for-tests";
const REVIEW_TOKEN: &str = "review-token-for-tests";
const BLOCKLIST_TOKEN: &str = "blocklist-token-for-tests";

fn root() -> PathBuf {
    hashsieve_testkit::workspace()
}

struct Daemon {
    process: Hashsieved,
    address: SocketAddr,
    index: PathBuf,
    temp: tempfile::TempDir,
}

/// An index directory listing the MD5 of `wee.jpg`, served writable with a token for each role,
/// a 1 MiB body limit, a one-second header deadline, a triage store exporting to `hotline`, and
/// a fetch policy that allows 127.0.0.1.
fn start() -> Daemon {
    start_with(true)
}

/// The same, writable or read-only (then checking for changes every 50 ms).
fn start_with(writable: bool) -> Daemon {
    let temp = tempfile::tempdir().unwrap();
    let index = temp.path().join("index");
    let mut builder = IndexBuilder::new();
    let hot = builder.add_list(ListOptions::new("hot")).unwrap();
    let md5 = hex::decode(md5sum(&sample("wee.jpg"))).unwrap();
    builder.add(hot, &ImportedEntry::new(HashKind::Md5, md5)).unwrap();
    IndexDir::create(&index, &builder).unwrap();
    let config = temp.path().join("hashsieved.toml");
    // A writable daemon also holds a hotline's verdict memory, exporting to `hotline`.
    // Its confirmed URLs go on the block list at once.
    let triage = if writable {
        format!(
            "[triage]\nstore = {:?}\nexport_list = \"hotline\"\n[takedown]\nblock_after_secs = 0\n",
            temp.path().join("triage.redb")
        )
    } else {
        String::new()
    };
    std::fs::write(
        &config,
        format!(
            "index = {index:?}\nwritable = {writable}\nreload_check_ms = 50\n[http]\nlisten = \"127.0.0.1:0\"\n\
             [limits]\nmax_body_bytes = 1048576\nheader_timeout_secs = 1\nrequest_timeout_secs = 5\n\
             {triage}[fetch]\nallow_networks = [\"127.0.0.1/32\"]\ntotal_timeout_ms = 3000\n\
             [[tokens]]\nid = \"ingest\"\nsha256 = \"{}\"\nroles = [\"match\"]\n\
             [[tokens]]\nid = \"ops\"\nsha256 = \"{}\"\nroles = [\"admin\"]\n\
             [[tokens]]\nid = \"limited\"\nsha256 = \"{}\"\nroles = [\"match\"]\nrate_per_sec = 1\nburst = 3\n\
             [[tokens]]\nid = \"form\"\nsha256 = \"{}\"\nroles = [\"report\"]\n\
             [[tokens]]\nid = \"analyst\"\nsha256 = \"{}\"\nroles = [\"review\"]\n\
             [[tokens]]\nid = \"isp\"\nsha256 = \"{}\"\nroles = [\"blocklist\"]\n",
            sha256_hex(MATCH_TOKEN),
            sha256_hex(ADMIN_TOKEN),
            sha256_hex(LIMITED_TOKEN),
            sha256_hex(REPORT_TOKEN),
            sha256_hex(REVIEW_TOKEN),
            sha256_hex(BLOCKLIST_TOKEN),
        ),
    )
    .unwrap();
    let process = Hashsieved::start(&config, 1);
    let address = process.announced("http://").expect("an HTTP address").parse().unwrap();
    Daemon { process, address, index, temp }
}

fn hash_query(kind: &str, value: &str) -> Vec<u8> {
    serde_json::json!({"hashes": [{"kind": kind, "value": value}]}).to_string().into_bytes()
}

#[test]
fn content_and_hashes_match_with_roles_and_live_changes() {
    let daemon = start();
    let address = daemon.address;
    assert_eq!(request(address, "GET", "/healthz", None, b"").status, 200);
    let ready = request(address, "GET", "/readyz", None, b"").json();
    assert_eq!((ready["ready"].as_bool(), ready["entries"].as_u64()), (Some(true), Some(1)));

    let wee = std::fs::read(sample("wee.jpg")).unwrap();
    let refused = request(address, "POST", "/v1/match/content", None, &wee);
    assert_eq!(refused.status, 401);
    assert_eq!(refused.header("content-type"), Some("application/problem+json"));
    assert_eq!(refused.json()["status"], 401);
    assert_eq!(request(address, "POST", "/v1/match/content", Some("wrong"), &wee).status, 401);

    let answer = request(address, "POST", "/v1/match/content", Some(MATCH_TOKEN), &wee);
    assert_eq!(answer.status, 200);
    let answer = answer.json();
    assert_eq!(answer["outcome"], "known");
    assert_eq!(answer["matches"][0]["list"], "hot");
    assert_eq!(answer["hashes"]["md5"], md5sum(&sample("wee.jpg")));
    assert_eq!(answer["size"], wee.len());

    // A second picture is unknown until an admin lists it; a match token cannot.
    let other_path = std::fs::read_dir(root().join("samples/images"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| md5sum(p) != md5sum(&sample("wee.jpg")))
        .unwrap();
    let other_md5 = md5sum(&other_path);
    let lookup =
        request(address, "POST", "/v1/match/hashes", Some(MATCH_TOKEN), &hash_query("md5", &other_md5));
    assert_eq!(lookup.json()["results"][0]["outcome"], "unknown");
    let change = serde_json::json!({"changes": [{"op": "add", "list": "hot", "kind": "md5", "value": other_md5,
                                                 "id": "T-1", "category": "A1"}], "actor": "test"});
    let change = change.to_string().into_bytes();
    assert_eq!(request(address, "POST", "/v1/lists/changes", Some(MATCH_TOKEN), &change).status, 403);
    let receipt = request(address, "POST", "/v1/lists/changes", Some(ADMIN_TOKEN), &change);
    assert_eq!(receipt.status, 200, "{}", String::from_utf8_lossy(&receipt.body));
    assert_eq!(receipt.json()["applied"]["added"], 1);
    let lookup =
        request(address, "POST", "/v1/match/hashes", Some(MATCH_TOKEN), &hash_query("md5", &other_md5));
    let result = &lookup.json()["results"][0];
    assert_eq!(
        (result["outcome"].as_str(), result["matches"][0]["entry_id"].as_str()),
        (Some("known"), Some("T-1"))
    );

    // A change that names no list is refused as a problem, and nothing is written.
    let bad =
        serde_json::json!({"changes": [{"op": "add", "list": "typo", "kind": "md5", "value": other_md5}]});
    let bad = request(address, "POST", "/v1/lists/changes", Some(ADMIN_TOKEN), bad.to_string().as_bytes());
    assert_eq!(bad.status, 422);
    assert!(bad.json()["detail"].as_str().unwrap().contains("typo"));

    let compacted = request(address, "POST", "/v1/lists/compact", Some(ADMIN_TOKEN), b"");
    assert_eq!(compacted.status, 200);
    assert_eq!(compacted.json()["generation"], 2);
    let lookup =
        request(address, "POST", "/v1/match/hashes", Some(MATCH_TOKEN), &hash_query("md5", &other_md5));
    assert_eq!(lookup.json()["results"][0]["outcome"], "known");

    let malformed = request(address, "POST", "/v1/match/hashes", Some(MATCH_TOKEN), &hash_query("pdq", "00"));
    assert_eq!(malformed.status, 422);
    let not_json = request(address, "POST", "/v1/match/hashes", Some(MATCH_TOKEN), b"{\"hashes\": [");
    assert_eq!(not_json.status, 400);
    assert_eq!(request(address, "GET", "/v2/anything", None, b"").status, 404);
}

#[test]
fn limits_and_bad_clients() {
    let daemon = start();
    let address = daemon.address;

    let big = vec![0u8; 2 << 20];
    let refused = request(address, "POST", "/v1/match/content", Some(MATCH_TOKEN), &big);
    assert_eq!(refused.status, 413);
    assert_eq!(refused.header("content-type"), Some("application/problem+json"));

    // Garbage gets an error reply or a closed connection, and the daemon serves on.
    for garbage in [&b"\x00\x01\x02 not http at all\r\n\r\n"[..], b"GET / HTTP/9.9\r\n\r\n", &[0xff; 70_000]]
    {
        let mut stream = TcpStream::connect(address).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = stream.write_all(garbage);
        let mut reply = Vec::new();
        let _ = stream.read_to_end(&mut reply);
        let text = String::from_utf8_lossy(&reply);
        assert!(reply.is_empty() || text.starts_with("HTTP/1.1 4"), "{text}");
    }

    // A client that connects and never sends a byte is cut off after the header deadline too.
    let mut silent = TcpStream::connect(address).unwrap();
    silent.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let started = Instant::now();
    let mut nothing = [0u8; 16];
    assert_eq!(silent.read(&mut nothing).unwrap_or(0), 0, "closed, not answered");
    assert!(started.elapsed() < Duration::from_secs(5), "held for {:?}", started.elapsed());

    // A client that never finishes its headers is cut off after the header deadline.
    let mut slow = TcpStream::connect(address).unwrap();
    slow.write_all(b"POST /v1/match/content HTTP/1.1\r\nHost: slow\r\n").unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let started = Instant::now();
    let mut buffer = [0u8; 512];
    let result = slow.read(&mut buffer);
    let timed_out = matches!(&result, Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut));
    assert!(
        !timed_out && started.elapsed() < Duration::from_secs(5),
        "held for {:?}: {result:?}",
        started.elapsed()
    );

    assert_eq!(request(address, "GET", "/healthz", None, b"").status, 200);
}

#[test]
fn sigterm_drains_and_exits_cleanly() {
    let mut daemon = start();
    assert_eq!(request(daemon.address, "GET", "/healthz", None, b"").status, 200);
    daemon.process.terminate();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = daemon.process.child.try_wait().unwrap() {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "still running after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
    assert!(TcpStream::connect(daemon.address).is_err(), "the port is closed");
}

/// A read-only daemon follows changes another process makes to its directory — adds, removals
/// and a compaction — with no failed request while it reloads.
#[test]
fn a_read_only_daemon_follows_changes_with_no_failed_request() {
    use hashsieve_core::delta::Removal;
    use hashsieve_core::index::dir::DirOptions;
    use hashsieve_core::matcher::Matcher;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    let daemon = start_with(false);
    let address = daemon.address;
    let wee = md5sum(&sample("wee.jpg"));
    let new = format!("{:032x}", 0x5eed_u128);
    let outcome = |value: &str| -> String {
        let answer =
            request(address, "POST", "/v1/match/hashes", Some(MATCH_TOKEN), &hash_query("md5", value));
        assert_eq!(answer.status, 200);
        answer.json()["results"][0]["outcome"].as_str().unwrap().to_string()
    };
    let wait_for = |value: &str, expected: &str| {
        let started = Instant::now();
        while outcome(value) != expected {
            assert!(started.elapsed() < Duration::from_secs(10), "{value} never became {expected}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    assert_eq!(outcome(&new), "unknown");
    // Without a [triage] store there is no hotline API here, and it says so.
    let groups = request(address, "GET", "/v1/review/groups", Some(REVIEW_TOKEN), b"");
    assert_eq!(groups.status, 404);
    assert_eq!(groups.json()["type"], "https://hashsieve.invalid/problems/no-triage");

    let stop = AtomicBool::new(false);
    let (served, failed) = (AtomicU64::new(0), AtomicU64::new(0));
    std::thread::scope(|scope| {
        scope.spawn(|| {
            while !stop.load(Ordering::Acquire) {
                let answer =
                    request(address, "POST", "/v1/match/hashes", Some(MATCH_TOKEN), &hash_query("md5", &wee));
                let known = answer.status == 200 && answer.json()["results"][0]["outcome"] == "known";
                served.fetch_add(1, Ordering::Relaxed);
                failed.fetch_add(u64::from(!known), Ordering::Relaxed);
            }
        });
        // Another process's changes: this test opens the directory for writing.
        let options = DirOptions { compact_after: None, ..DirOptions::default() };
        let (writer, _) = Matcher::open_dir(&daemon.index, options).unwrap();
        writer.add("hot", vec![ImportedEntry::new(HashKind::Md5, hex::decode(&new).unwrap())], None).unwrap();
        wait_for(&new, "known");
        writer.compact().unwrap();
        wait_for(&new, "known");
        writer.remove(vec![Removal::hash(None, HashKind::Md5, hex::decode(&new).unwrap())], None).unwrap();
        wait_for(&new, "unknown");
        stop.store(true, Ordering::Release);
    });
    assert!(served.load(Ordering::Relaxed) > 0);
    assert_eq!(failed.load(Ordering::Relaxed), 0, "requests failed during reloads");
    let ready = request(address, "GET", "/readyz", None, b"").json();
    assert_eq!(ready["generation"], 2, "the daemon serves the compacted index");
}

#[test]
fn forms_upload_content_and_tokens_are_rate_limited() {
    let daemon = start();
    let url = format!("http://{}/v1/match/content", daemon.address);
    let curl = |args: &[&str]| -> (String, String) {
        let output = Command::new("curl")
            .args(["--silent", "--max-time", "10", "-H", &format!("Authorization: Bearer {MATCH_TOKEN}")])
            .args(["--write-out", "\n%{http_code}"])
            .args(args)
            .arg(&url)
            .output()
            .expect("curl runs");
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        let (body, status) = text.rsplit_once('\n').unwrap();
        (status.to_string(), body.to_string())
    };
    // An HTML form's upload, as `curl -F` sends it: the file part is the content.
    let wee = format!("file=@{}", sample("wee.jpg").display());
    let (status, body) = curl(&["-F", "comment=reported twice", "-F", &wee]);
    assert_eq!(status, "200", "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["outcome"], "known");
    assert_eq!(answer["hashes"]["md5"], md5sum(&sample("wee.jpg")));
    let (status, body) = curl(&["-F", "comment=no file here"]);
    assert_eq!(status, "400", "{body}");
    assert!(body.contains("no-file"), "{body}");
    let big = daemon.temp.path().join("big.bin");
    std::fs::write(&big, vec![1u8; 2 << 20]).unwrap();
    let (status, _) = curl(&["-F", &format!("file=@{}", big.display())]);
    assert_eq!(status, "413");

    // A token limited to 1 request a second with a burst of 3.
    let ask = || {
        request(
            daemon.address,
            "POST",
            "/v1/match/hashes",
            Some(LIMITED_TOKEN),
            &hash_query("md5", &"0".repeat(32)),
        )
    };
    for _ in 0..3 {
        assert_eq!(ask().status, 200);
    }
    let refused = ask();
    assert_eq!(refused.status, 429);
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert_eq!(refused.header("content-type"), Some("application/problem+json"));
    // Other tokens are not affected.
    let other = request(
        daemon.address,
        "POST",
        "/v1/match/hashes",
        Some(MATCH_TOKEN),
        &hash_query("md5", &"0".repeat(32)),
    );
    assert_eq!(other.status, 200);
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(ask().status, 200, "the bucket refills");
}

#[test]
fn metrics_count_what_happened() {
    let daemon = start();
    let address = daemon.address;
    let wee = std::fs::read(sample("wee.jpg")).unwrap();
    let other = std::fs::read(sample("q1050.jpg")).unwrap();
    for content in [&wee, &wee, &other] {
        assert_eq!(request(address, "POST", "/v1/match/content", Some(MATCH_TOKEN), content).status, 200);
    }
    assert_eq!(request(address, "POST", "/v1/match/content", None, &wee).status, 401);
    assert_eq!(
        request(address, "POST", "/v1/match/content", Some(MATCH_TOKEN), &vec![0; 2 << 20]).status,
        413
    );
    assert_eq!(request(address, "GET", "/no/such/path", None, b"").status, 404);

    let scrape = || {
        let response = request(address, "GET", "/metrics", None, b"");
        assert_eq!(response.status, 200);
        assert!(response.header("content-type").unwrap().starts_with("application/openmetrics-text"));
        parse_openmetrics(&String::from_utf8(response.body).unwrap())
    };
    let value = |samples: &[(String, BTreeMap<String, String>, f64)], name: &str, labels: &[(&str, &str)]| {
        let found: Vec<f64> = samples
            .iter()
            .filter(|(n, l, _)| {
                n == name && labels.iter().all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|(_, _, v)| *v)
            .collect();
        assert_eq!(found.len(), 1, "{name} {labels:?}: {found:?}");
        found[0]
    };
    let samples = scrape();
    let content = [("protocol", "http"), ("endpoint", "/v1/match/content")];
    let with = |status: &'static str| [content[0], content[1], ("status", status)];
    assert_eq!(value(&samples, "hashsieve_requests_total", &with("200")), 3.0);
    assert_eq!(value(&samples, "hashsieve_requests_total", &with("401")), 1.0);
    assert_eq!(value(&samples, "hashsieve_requests_total", &with("413")), 1.0);
    let other = [("protocol", "http"), ("endpoint", "other"), ("status", "404")];
    assert_eq!(value(&samples, "hashsieve_requests_total", &other), 1.0, "unknown paths share one label");
    assert_eq!(value(&samples, "hashsieve_request_duration_seconds_count", &content), 5.0);
    let infinite = [content[0], content[1], ("le", "+Inf")];
    assert_eq!(value(&samples, "hashsieve_request_duration_seconds_bucket", &infinite), 5.0);
    let verdict = |outcome| [("protocol", "http"), ("outcome", outcome)];
    assert_eq!(value(&samples, "hashsieve_verdicts_total", &verdict("known")), 2.0);
    assert_eq!(value(&samples, "hashsieve_verdicts_total", &verdict("unknown")), 1.0);
    let hot = [("protocol", "http"), ("list", "hot"), ("suppressed", "false")];
    assert_eq!(value(&samples, "hashsieve_matches_total", &hot), 2.0);
    let reason = |reason| [("protocol", "http"), ("reason", reason)];
    assert_eq!(value(&samples, "hashsieve_rejected_total", &reason("unauthorized")), 1.0);
    assert_eq!(value(&samples, "hashsieve_rejected_total", &reason("too_large")), 1.0);
    assert_eq!(value(&samples, "hashsieve_index_entries", &[("kind", "md5")]), 1.0);
    assert_eq!(value(&samples, "hashsieve_index_generation", &[]), 1.0);
    assert!(
        value(&samples, "hashsieve_open_connections", &[("protocol", "http")]) >= 1.0,
        "the scrape's own"
    );
    assert!(value(&samples, "process_resident_memory_bytes", &[]) > 1e6);

    // A list change and a compaction show in the index gauges.
    let change = serde_json::json!({"changes": [{"op": "add", "list": "hot", "kind": "md5", "value": "0".repeat(32)}]});
    let answer =
        request(address, "POST", "/v1/lists/changes", Some(ADMIN_TOKEN), change.to_string().as_bytes());
    assert_eq!(answer.status, 200, "{}", String::from_utf8_lossy(&answer.body));
    let samples = scrape();
    assert_eq!(value(&samples, "hashsieve_delta_entries", &[]), 1.0);
    assert_eq!(request(address, "POST", "/v1/lists/compact", Some(ADMIN_TOKEN), b"").status, 200);
    let samples = scrape();
    assert_eq!(value(&samples, "hashsieve_index_generation", &[]), 2.0);
    assert_eq!(value(&samples, "hashsieve_index_entries", &[("kind", "md5")]), 2.0);
    assert_eq!(value(&samples, "hashsieve_delta_entries", &[]), 0.0);
}

/// The served OpenAPI document as a JSON Schema root whose `allOf` is `schema`, so that the
/// document's own `$ref`s resolve.
fn validator(document: &Value, schema: &Value) -> jsonschema::Validator {
    let mut root = document.clone();
    root["$schema"] = Value::from("https://json-schema.org/draft/2020-12/schema");
    root["allOf"] = Value::Array(vec![schema.clone()]);
    jsonschema::validator_for(&root).unwrap()
}

/// Checks a response against the operation `method template` of the document: its status is
/// documented, with its content type, and a JSON body fits the documented schema.
fn check_response(document: &Value, method: &str, template: &str, response: &Response) {
    let operation = &document["paths"][template][method.to_ascii_lowercase()];
    assert!(operation.is_object(), "{method} {template} is not documented");
    let documented = &operation["responses"][response.status.to_string()];
    let what = format!("{method} {template} → {}", response.status);
    assert!(documented.is_object(), "{what}: status not documented");
    if documented.get("content").is_none() {
        assert!(response.body.is_empty(), "{what}: a body where none is documented");
        return;
    }
    let content_type = response.header("content-type").unwrap_or("").split(';').next().unwrap().trim();
    let media = &documented["content"][content_type];
    assert!(media.is_object(), "{what}: content type {content_type:?} not documented");
    if content_type.ends_with("json") {
        let body = response.json();
        let validator = validator(document, &media["schema"]);
        let errors: Vec<String> =
            validator.iter_errors(&body).map(|e| format!("{e} at {}", e.instance_path)).collect();
        assert!(errors.is_empty(), "{what}: {errors:?}\n{body}");
    }
}

/// A request of the contract test: method, path template, path, token, extra headers, body.
type Case<'a> = (&'a str, &'a str, String, Option<&'a str>, Vec<&'a str>, Vec<u8>);

#[test]
fn the_openapi_document_describes_what_is_served() {
    let daemon = start();
    let address = daemon.address;
    let served = request(address, "GET", "/openapi.json", None, b"");
    assert_eq!(served.status, 200);
    let document = served.json();
    assert_eq!(document["openapi"], "3.1.0");
    // The document is valid OpenAPI 3.1, as the reference validator (PyPI) reads it.
    const VALIDATE: &str = "import json, sys\n\
        from openapi_spec_validator import validate\n\
        validate(json.load(sys.stdin))\n";
    let output = pipe("python3", &["-c", VALIDATE], &served.body);
    let errors = String::from_utf8_lossy(&output.stderr);
    assert!(
        !errors.contains("ModuleNotFoundError"),
        "pip install openapi-spec-validator (bash tests/run.sh does)"
    );
    assert!(output.status.success(), "not valid OpenAPI 3.1: {errors}");
    let wee = std::fs::read(sample("wee.jpg")).unwrap();
    let wee_md5 = md5sum(&sample("wee.jpg"));
    let hashes = |value: &str| hash_query("md5", value);
    let add = serde_json::json!({"changes": [{"op": "add", "list": "hot", "kind": "md5", "value": "1".repeat(32)}]});
    let bad_change = serde_json::json!({"changes": [{"op": "add", "list": "nope", "kind": "md5", "value": "1".repeat(32)}]});
    let allow = serde_json::json!({"hashes": [{"kind": "md5", "value": "2".repeat(32), "id": "fp"}]});
    let form = b"--XX\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n--XX--\r\n";
    let list = format!("{wee_md5}\n");
    // (method, template, path, token, extra headers, body): successes and each kind of error.
    let cases: Vec<Case> = vec![
        ("GET", "/healthz", "/healthz".into(), None, vec![], vec![]),
        ("GET", "/readyz", "/readyz".into(), None, vec![], vec![]),
        ("GET", "/metrics", "/metrics".into(), None, vec![], vec![]),
        ("GET", "/openapi.json", "/openapi.json".into(), None, vec![], vec![]),
        ("POST", "/v1/match/content", "/v1/match/content".into(), Some(MATCH_TOKEN), vec![], wee.clone()),
        ("POST", "/v1/match/content", "/v1/match/content".into(), None, vec![], wee.clone()),
        (
            "POST",
            "/v1/match/content",
            "/v1/match/content".into(),
            Some(MATCH_TOKEN),
            vec![],
            vec![0; 2 << 20],
        ),
        (
            "POST",
            "/v1/match/content",
            "/v1/match/content".into(),
            Some(MATCH_TOKEN),
            vec!["Content-Type: multipart/form-data; boundary=XX"],
            form.to_vec(),
        ),
        ("POST", "/v1/match/hashes", "/v1/match/hashes".into(), Some(MATCH_TOKEN), vec![], hashes(&wee_md5)),
        ("POST", "/v1/match/hashes", "/v1/match/hashes".into(), Some(MATCH_TOKEN), vec![], hashes("xyz")),
        (
            "POST",
            "/v1/match/hashes",
            "/v1/match/hashes".into(),
            Some(MATCH_TOKEN),
            vec![],
            b"{not json".to_vec(),
        ),
        (
            "POST",
            "/v1/lists/changes",
            "/v1/lists/changes".into(),
            Some(ADMIN_TOKEN),
            vec![],
            add.to_string().into(),
        ),
        (
            "POST",
            "/v1/lists/changes",
            "/v1/lists/changes".into(),
            Some(MATCH_TOKEN),
            vec![],
            add.to_string().into(),
        ),
        (
            "POST",
            "/v1/lists/changes",
            "/v1/lists/changes".into(),
            Some(ADMIN_TOKEN),
            vec![],
            bad_change.to_string().into(),
        ),
        (
            "POST",
            "/v1/lists/allow",
            "/v1/lists/allow".into(),
            Some(ADMIN_TOKEN),
            vec![],
            allow.to_string().into(),
        ),
        (
            "PUT",
            "/v1/lists/{list}",
            "/v1/lists/hot?format=lines&kind=md5".into(),
            Some(ADMIN_TOKEN),
            vec![],
            list.clone().into(),
        ),
        (
            "PUT",
            "/v1/lists/{list}",
            "/v1/lists/hot?format=lines".into(),
            Some(ADMIN_TOKEN),
            vec![],
            list.clone().into(),
        ),
        (
            "PUT",
            "/v1/lists/{list}",
            "/v1/lists/hot?format=xml".into(),
            Some(ADMIN_TOKEN),
            vec![],
            list.into(),
        ),
        ("POST", "/v1/lists/compact", "/v1/lists/compact".into(), Some(ADMIN_TOKEN), vec![], vec![]),
    ];
    // The hotline's API, in an order that makes its ids known: q1050 is item 1 in group 1, the
    // square fetched from the origin item 2 in group 2, its re-encoded copy item 3 in group 2.
    let q1050 = std::fs::read(sample("q1050.jpg")).unwrap();
    let square = std::fs::read(sample("square-256x256.jpg")).unwrap();
    let site = daemon_support::origin(square.clone());
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let url_report = |id: &str, url: &str| serde_json::json!({"id": id, "url": url}).to_string().into_bytes();
    let verdict = |kind: &str, category: Option<&str>| {
        serde_json::json!({"kind": kind, "category": category})
            .to_string()
            .replace(",\"category\":null", "")
            .into_bytes()
    };
    let (report, review) = (Some(REPORT_TOKEN), Some(REVIEW_TOKEN));
    let hotline_cases: Vec<Case> = vec![
        (
            "POST",
            "/v1/reports/content",
            "/v1/reports/content?id=c1&source=test".into(),
            report,
            vec![],
            q1050.clone(),
        ),
        ("POST", "/v1/reports/content", "/v1/reports/content?id=c1".into(), report, vec![], square.clone()),
        (
            "POST",
            "/v1/reports/content",
            "/v1/reports/content?id=c2".into(),
            Some(MATCH_TOKEN),
            vec![],
            q1050.clone(),
        ),
        ("POST", "/v1/reports/content", "/v1/reports/content?source=x".into(), report, vec![], q1050.clone()),
        ("POST", "/v1/reports/content", "/v1/reports/content?id=c3".into(), report, vec![], vec![0; 2 << 20]),
        ("POST", "/v1/reports/content", "/v1/reports/content?id=%20".into(), report, vec![], q1050.clone()),
        (
            "POST",
            "/v1/reports",
            "/v1/reports".into(),
            report,
            vec![],
            url_report("u1", &format!("http://{site}/a.jpg")),
        ),
        (
            "POST",
            "/v1/reports",
            "/v1/reports".into(),
            report,
            vec![],
            url_report("u2", "http://10.0.0.1/a.jpg"),
        ),
        (
            "POST",
            "/v1/reports",
            "/v1/reports".into(),
            report,
            vec![],
            url_report("u3", &format!("http://{closed}/")),
        ),
        ("POST", "/v1/reports", "/v1/reports".into(), report, vec![], b"{\"id\": 1}".to_vec()),
        (
            "POST",
            "/v1/reports/content",
            "/v1/reports/content?id=c4".into(),
            report,
            vec![],
            daemon_support::reencoded(&square, 85),
        ),
        ("GET", "/v1/reports/{id}", "/v1/reports/c1".into(), review, vec![], vec![]),
        ("GET", "/v1/reports/{id}", "/v1/reports/unknown".into(), review, vec![], vec![]),
        ("GET", "/v1/reports/{id}", "/v1/reports/c1".into(), None, vec![], vec![]),
        ("GET", "/v1/review/groups", "/v1/review/groups".into(), review, vec![], vec![]),
        ("GET", "/v1/review/groups", "/v1/review/groups?limit=many".into(), review, vec![], vec![]),
        ("GET", "/v1/review/groups", "/v1/review/groups".into(), report, vec![], vec![]),
        ("GET", "/v1/review/groups/{group}", "/v1/review/groups/2".into(), review, vec![], vec![]),
        ("GET", "/v1/review/groups/{group}", "/v1/review/groups/99".into(), review, vec![], vec![]),
        ("GET", "/v1/review/groups/{group}", "/v1/review/groups/two".into(), review, vec![], vec![]),
        (
            "POST",
            "/v1/review/groups/{group}/split",
            "/v1/review/groups/2/split".into(),
            review,
            vec![],
            b"{\"items\": [2, 3]}".to_vec(),
        ),
        (
            "POST",
            "/v1/review/groups/{group}/split",
            "/v1/review/groups/2/split".into(),
            review,
            vec![],
            b"{\"items\": [3]}".to_vec(),
        ),
        (
            "POST",
            "/v1/review/groups/{group}/split",
            "/v1/review/groups/99/split".into(),
            review,
            vec![],
            b"{\"items\": [3]}".to_vec(),
        ),
        (
            "POST",
            "/v1/review/groups/{group}/split",
            "/v1/review/groups/2/split".into(),
            review,
            vec![],
            b"[3]".to_vec(),
        ),
        (
            "POST",
            "/v1/review/groups/{group}/verdict",
            "/v1/review/groups/1/verdict".into(),
            review,
            vec![],
            verdict("illegal", Some("A")),
        ),
        (
            "POST",
            "/v1/review/groups/{group}/verdict",
            "/v1/review/groups/1/verdict".into(),
            review,
            vec![],
            verdict("legal", None),
        ),
        (
            "POST",
            "/v1/review/groups/{group}/split",
            "/v1/review/groups/1/split".into(),
            review,
            vec![],
            b"{\"items\": [1]}".to_vec(),
        ),
        (
            "POST",
            "/v1/review/groups/{group}/verdict",
            "/v1/review/groups/2/verdict".into(),
            review,
            vec![],
            verdict("illegal", None),
        ),
        (
            "POST",
            "/v1/review/groups/{group}/verdict",
            "/v1/review/groups/99/verdict".into(),
            review,
            vec![],
            verdict("legal", None),
        ),
        (
            "POST",
            "/v1/review/groups/{group}/verdict",
            "/v1/review/groups/2/verdict".into(),
            review,
            vec![],
            b"legal".to_vec(),
        ),
        ("GET", "/v1/items/{item}", "/v1/items/1".into(), review, vec![], vec![]),
        ("GET", "/v1/items/{item}", "/v1/items/99".into(), review, vec![], vec![]),
        ("GET", "/v1/items/{item}", "/v1/items/-1".into(), review, vec![], vec![]),
        (
            "POST",
            "/v1/items/{item}/verdict",
            "/v1/items/3/verdict".into(),
            review,
            vec![],
            verdict("unclear", None),
        ),
        (
            "POST",
            "/v1/items/{item}/verdict",
            "/v1/items/3/verdict".into(),
            review,
            vec![],
            verdict("legal", Some("A")),
        ),
        (
            "POST",
            "/v1/items/{item}/verdict",
            "/v1/items/99/verdict".into(),
            review,
            vec![],
            verdict("legal", None),
        ),
        ("POST", "/v1/items/{item}/verdict", "/v1/items/3/verdict".into(), review, vec![], b"{".to_vec()),
        (
            "POST",
            "/v1/items/{item}/verdict",
            "/v1/items/3/verdict".into(),
            Some(MATCH_TOKEN),
            vec![],
            verdict("legal", None),
        ),
    ];
    // The takedown loop: item 2, reported at the origin's URL, is confirmed illegal, which opens
    // case 1 there; it goes on the block list at once (block_after_secs = 0).
    let takedown_case = |method, template, path: &str, token, headers, body: &[u8]| {
        (method, template, path.to_string(), token, headers, body.to_vec())
    };
    let blocklist = Some(BLOCKLIST_TOKEN);
    let case = "/v1/takedown/cases/{case}";
    let takedown_cases: Vec<Case> = vec![
        takedown_case(
            "POST",
            "/v1/items/{item}/verdict",
            "/v1/items/2/verdict",
            review,
            vec![],
            &verdict("illegal", Some("A")),
        ),
        takedown_case("GET", "/v1/takedown/cases", "/v1/takedown/cases", review, vec![], b""),
        takedown_case(
            "GET",
            "/v1/takedown/cases",
            "/v1/takedown/cases?state=open,bogus",
            review,
            vec![],
            b"",
        ),
        takedown_case(
            "GET",
            "/v1/takedown/cases",
            "/v1/takedown/cases?state=open&limit=5",
            report,
            vec![],
            b"",
        ),
        takedown_case("GET", case, "/v1/takedown/cases/1", review, vec![], b""),
        takedown_case("GET", case, "/v1/takedown/cases/99", review, vec![], b""),
        takedown_case("GET", case, "/v1/takedown/cases/one", review, vec![], b""),
        takedown_case("GET", "/v1/takedown/notices", "/v1/takedown/notices", review, vec![], b""),
        takedown_case(
            "POST",
            "/v1/takedown/cases/{case}/check",
            "/v1/takedown/cases/1/check",
            review,
            vec![],
            b"",
        ),
        takedown_case(
            "POST",
            "/v1/takedown/cases/{case}/notice",
            "/v1/takedown/cases/1/notice",
            review,
            vec![],
            br#"{"to": "abuse@origin.test"}"#,
        ),
        takedown_case(
            "POST",
            "/v1/takedown/cases/{case}/notice",
            "/v1/takedown/cases/1/notice",
            review,
            vec![],
            br#"{"to": ""}"#,
        ),
        takedown_case(
            "POST",
            "/v1/takedown/cases/{case}/notice",
            "/v1/takedown/cases/1/notice",
            review,
            vec![],
            b"x",
        ),
        takedown_case(
            "POST",
            "/v1/takedown/cases/{case}/whole-host",
            "/v1/takedown/cases/1/whole-host",
            review,
            vec![],
            br#"{"whole_host": true}"#,
        ),
        takedown_case(
            "POST",
            "/v1/takedown/cases/{case}/whole-host",
            "/v1/takedown/cases/99/whole-host",
            review,
            vec![],
            br#"{"whole_host": true}"#,
        ),
        takedown_case("GET", "/v1/takedown/blocklist", "/v1/takedown/blocklist", blocklist, vec![], b""),
        takedown_case(
            "GET",
            "/v1/takedown/blocklist",
            "/v1/takedown/blocklist?format=plain",
            blocklist,
            vec![],
            b"",
        ),
        takedown_case(
            "GET",
            "/v1/takedown/blocklist",
            "/v1/takedown/blocklist",
            blocklist,
            vec!["If-None-Match: *"],
            b"",
        ),
        takedown_case(
            "GET",
            "/v1/takedown/blocklist",
            "/v1/takedown/blocklist?format=xml",
            blocklist,
            vec![],
            b"",
        ),
        takedown_case("GET", "/v1/takedown/blocklist", "/v1/takedown/blocklist", review, vec![], b""),
        takedown_case(
            "POST",
            "/v1/takedown/cases/{case}/refer",
            "/v1/takedown/cases/1/refer",
            review,
            vec![],
            br#"{"partner": "Hotline DE"}"#,
        ),
        takedown_case(
            "POST",
            "/v1/takedown/cases/{case}/refer",
            "/v1/takedown/cases/1/refer",
            review,
            vec![],
            br#"{"partner": " "}"#,
        ),
        takedown_case("GET", "/v1/takedown/referrals", "/v1/takedown/referrals", review, vec![], b""),
        takedown_case("GET", "/v1/takedown/figures", "/v1/takedown/figures", review, vec![], b""),
        takedown_case(
            "POST",
            "/v1/takedown/cases/{case}/close",
            "/v1/takedown/cases/1/close",
            review,
            vec![],
            br#"{"reason": ""}"#,
        ),
        takedown_case(
            "POST",
            "/v1/takedown/cases/{case}/close",
            "/v1/takedown/cases/1/close",
            review,
            vec![],
            br#"{"reason": "test over", "analyst": "a"}"#,
        ),
        takedown_case(
            "POST",
            "/v1/takedown/cases/{case}/check",
            "/v1/takedown/cases/1/check",
            review,
            vec![],
            b"",
        ),
        takedown_case(
            "POST",
            "/v1/takedown/cases/{case}/refer",
            "/v1/takedown/cases/1/refer",
            review,
            vec![],
            br#"{"partner": "Hotline DE"}"#,
        ),
    ];
    // Last, as it closes the cases the verdict on group 1 opened.
    let reopen = |group: &str, body: &[u8]| -> Case {
        let path = format!("/v1/review/groups/{group}/reopen");
        ("POST", "/v1/review/groups/{group}/reopen", path, review, vec![], body.to_vec())
    };
    let reopen_cases: Vec<Case> = vec![
        reopen("1", br#"{"note": ""}"#),
        reopen("1", b"[1]"),
        reopen("99", br#"{"note": "undo"}"#),
        reopen("1", br#"{"note": "undo", "analyst": "qa"}"#),
        reopen("1", br#"{"note": "undo"}"#),
    ];
    let cases: Vec<Case> =
        cases.into_iter().chain(hotline_cases).chain(takedown_cases).chain(reopen_cases).collect();
    let mut exercised = std::collections::BTreeSet::new();
    for (method, template, path, token, headers, body) in &cases {
        let response = request_with(address, method, path, *token, headers, body);
        check_response(&document, method, template, &response);
        exercised.insert((method.to_ascii_lowercase(), template.to_string(), response.status));
    }
    let reopened = ("post".to_string(), "/v1/review/groups/{group}/reopen".to_string(), 200);
    assert!(exercised.contains(&reopened), "a reopening's answer was checked: {exercised:?}");
    // Every documented operation was exercised, and answers only the methods documented.
    for (template, operations) in document["paths"].as_object().unwrap() {
        let path = template
            .replace("{list}", "hot")
            .replace("{id}", "c1")
            .replace("{group}", "1")
            .replace("{item}", "1")
            .replace("{case}", "1");
        for method in ["get", "post", "put", "delete"] {
            if operations.get(method).is_some() {
                assert!(
                    exercised.iter().any(|(m, t, _)| m == method && t == template),
                    "{method} {template}"
                );
            } else {
                let response = request(address, &method.to_ascii_uppercase(), &path, Some(ADMIN_TOKEN), b"");
                assert_eq!(response.status, 405, "{method} {template} is not documented, so not served");
            }
        }
    }
    // And nothing else is served.
    let unknown = request(address, "GET", "/v1/undocumented", None, b"");
    assert_eq!(unknown.status, 404);
    // The statuses seen are the ones meant: a sample.
    for expected in [
        ("post", "/v1/match/content", 413),
        ("put", "/v1/lists/{list}", 422),
        ("post", "/v1/lists/changes", 403),
        ("post", "/v1/reports/content", 200),
        ("post", "/v1/reports/content", 409),
        ("post", "/v1/reports", 422),
        ("post", "/v1/reports", 502),
        ("post", "/v1/review/groups/{group}/split", 200),
        ("post", "/v1/review/groups/{group}/split", 409),
        ("post", "/v1/review/groups/{group}/verdict", 200),
        ("post", "/v1/review/groups/{group}/verdict", 409),
        ("post", "/v1/review/groups/{group}/verdict", 422),
        ("get", "/v1/review/groups/{group}", 400),
        ("post", "/v1/items/{item}/verdict", 200),
        ("get", "/v1/takedown/cases", 200),
        ("get", "/v1/takedown/cases", 400),
        ("get", "/v1/takedown/cases", 403),
        ("get", "/v1/takedown/cases/{case}", 404),
        ("post", "/v1/takedown/cases/{case}/notice", 422),
        ("get", "/v1/takedown/blocklist", 304),
        ("get", "/v1/takedown/blocklist", 403),
        ("post", "/v1/takedown/cases/{case}/check", 409),
        ("post", "/v1/takedown/cases/{case}/refer", 409),
    ] {
        assert!(
            exercised.contains(&(expected.0.into(), expected.1.into(), expected.2)),
            "{expected:?}: {exercised:?}"
        );
    }
}

/// Whether `actual` has the shape of the documentation's `example`: the same keys and array
/// lengths, equal strings (unless the example elides one with "…"), equal numbers and booleans
/// (but for the time and size of a compaction and timestamps (`…_ms`), which vary).
fn same_shape(example: &Value, actual: &Value, key: &str) -> Result<(), String> {
    match (example, actual) {
        (Value::Object(e), Value::Object(a)) => {
            let (ek, ak): (Vec<_>, Vec<_>) = (e.keys().collect(), a.keys().collect());
            if ek != ak {
                return Err(format!("keys {ek:?} != {ak:?}"));
            }
            e.iter().try_for_each(|(k, v)| same_shape(v, &a[k], k))
        }
        (Value::Array(e), Value::Array(a)) if e.len() == a.len() => {
            e.iter().zip(a).try_for_each(|(e, a)| same_shape(e, a, key))
        }
        (Value::String(e), Value::String(_)) if e.contains('…') => Ok(()),
        (Value::Number(_), Value::Number(_))
            if ["seconds", "bytes"].contains(&key) || key.ends_with("_ms") =>
        {
            Ok(())
        }
        (e, a) if e == a => Ok(()),
        (e, a) => Err(format!("{key}: {e} != {a}")),
    }
}

#[test]
fn the_api_documentation_examples_run_as_shown() {
    let daemon = start();
    // The site the takedown examples report, serving a picture unlike the others.
    let site = daemon_support::origin(std::fs::read(sample("shrink-a-lot.jpg")).unwrap());
    let text = std::fs::read_to_string(root().join("docs/API.md")).unwrap();
    // Each ```sh block and the ```json block after it.
    let blocks: Vec<(&str, &str)> =
        text.split("```").skip(1).step_by(2).filter_map(|b| b.split_once('\n')).collect();
    let mut examples = 0;
    for (i, (language, code)) in blocks.iter().enumerate() {
        if *language != "sh" {
            continue;
        }
        let output = Command::new("bash")
            .args(["-euo", "pipefail", "-c", code])
            .current_dir(root())
            .env("HASHSIEVE", format!("http://{}", daemon.address))
            .env("TOKEN", MATCH_TOKEN)
            .env("ADMIN_TOKEN", ADMIN_TOKEN)
            .env("REPORT_TOKEN", REPORT_TOKEN)
            .env("REVIEW_TOKEN", REVIEW_TOKEN)
            .env("BLOCKLIST_TOKEN", BLOCKLIST_TOKEN)
            .env("ORIGIN", format!("http://{site}"))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{code}\n{}", String::from_utf8_lossy(&output.stderr));
        let (next_language, expected) = blocks.get(i + 1).expect("an example's output follows it");
        assert_eq!(*next_language, "json", "{code}");
        let expected: Value = serde_json::from_str(expected).unwrap_or_else(|e| panic!("{expected}: {e}"));
        let actual: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{stdout}: {e}"));
        if let Err(difference) = same_shape(&expected, &actual, "") {
            panic!("{code}\nprinted {actual}\nthe documentation shows {expected}\n{difference}");
        }
        examples += 1;
    }
    assert!(examples >= 14, "{examples} examples run");
}
