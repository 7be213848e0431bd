//! The takedown loop through the real `hashsieved`: reports of URLs on loopback hosts are
//! confirmed illegal, which opens a case per URL; the daemon's re-checks then see each host
//! keep the content, answer 404, serve other content or stop listening, and the cases, the
//! block list (with its ETag) and the metrics follow. Notices reach the webhook of the host's
//! abuse contact, retried after a failure, with the same notice id. Re-checks of one host never exceed the
//! per-host limit, and a daemon killed with SIGKILL during re-checks loses no case and makes
//! no slot's check twice.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use hashsieve_core::index::dir::IndexDir;
use hashsieve_core::index::{IndexBuilder, ListOptions};
use hashsieve_testkit::mmdb::{self, Network};
use hashsieve_testkit::origin::{Behaviour, Origin};
use hashsieve_testkit::wait_for;
use serde_json::{Value, json};

mod daemon_support;
use daemon_support::{Hashsieved, parse_openmetrics, request, request_with, sample, sha256_hex};

const REPORTER: &str = "reporter-token-for-tests";
const ANALYST: &str = "analyst-token-for-tests";
const ISP: &str = "isp-token-for-tests";

/// A daemon holding a triage store, re-checking every `interval` second(s) without jitter,
/// `per_host` at a time, with confirmed URLs on the block list at once.
fn start(dir: &Path, interval: u64, per_host: usize) -> Hashsieved {
    start_with(dir, interval, per_host, "", "")
}

/// The same, with more `[takedown]` settings (a grace period of its own, say) and more
/// configuration at the end (abuse contacts, say).
fn start_with(dir: &Path, interval: u64, per_host: usize, takedown: &str, extra: &str) -> Hashsieved {
    let index = dir.join("index");
    if !index.exists() {
        let mut builder = IndexBuilder::new();
        builder.add_list(ListOptions::new("hot")).unwrap();
        IndexDir::create(&index, &builder).unwrap();
    }
    let config = dir.join("hashsieved.toml");
    let block_after = if takedown.contains("block_after_secs") { "" } else { "block_after_secs = 0\n" };
    let token = |id: &str, secret: &str, role: &str| {
        format!("[[tokens]]\nid = \"{id}\"\nsha256 = \"{}\"\nroles = [\"{role}\"]\n", sha256_hex(secret))
    };
    std::fs::write(
        &config,
        format!(
            "index = {index:?}\nwritable = true\n[http]\nlisten = \"127.0.0.1:0\"\n\
             [triage]\nstore = {:?}\n\
             [takedown]\ncheck_intervals_secs = [{interval}]\njitter_percent = 0\n{block_after}\
             checks_per_host = {per_host}\n{takedown}\n\
             notice_retry_secs = 1\n\
             [fetch]\nallow_networks = [\"127.0.0.1/32\"]\ntotal_timeout_ms = 5000\n{}{}{}{extra}",
            dir.join("triage.redb"),
            token("form", REPORTER, "report"),
            token("alice", ANALYST, "review"),
            token("isp", ISP, "blocklist"),
        ),
    )
    .unwrap();
    Hashsieved::start(&config, 1)
}

struct Api {
    address: std::net::SocketAddr,
}

impl Api {
    fn of(daemon: &Hashsieved) -> Api {
        Api { address: daemon.announced("http://").unwrap().parse().unwrap() }
    }

    fn ok(&self, method: &str, path: &str, token: &str, body: &[u8]) -> Value {
        let response = request(self.address, method, path, Some(token), body);
        assert_eq!(response.status, 200, "{method} {path}: {}", String::from_utf8_lossy(&response.body));
        response.json()
    }

    /// Reports each URL; returns the review group they share (the same picture).
    fn report_all(&self, urls: &[String]) -> u64 {
        let mut groups = Vec::new();
        for (i, url) in urls.iter().enumerate() {
            let body = json!({"id": format!("r{i}"), "url": url}).to_string();
            let answer = self.ok("POST", "/v1/reports", REPORTER, body.as_bytes());
            groups.push(answer["group"].as_u64().unwrap_or_else(|| panic!("{answer}")));
        }
        groups.dedup();
        assert_eq!(groups.len(), 1, "one picture, one group");
        groups[0]
    }

    fn confirm(&self, group: u64) {
        let verdict = json!({"kind": "illegal", "category": "A"}).to_string();
        self.ok("POST", &format!("/v1/review/groups/{group}/verdict"), ANALYST, verdict.as_bytes());
    }

    /// Every case, by URL.
    fn cases(&self) -> BTreeMap<String, Value> {
        let page = self.ok("GET", "/v1/takedown/cases?limit=500", ANALYST, b"");
        page["cases"]
            .as_array()
            .unwrap()
            .iter()
            .map(|case| (case["url"].as_str().unwrap().to_string(), case.clone()))
            .collect()
    }

    /// A case and its history, read together.
    fn detail(&self, case: &Value) -> (Value, Vec<Value>) {
        let detail = self.ok("GET", &format!("/v1/takedown/cases/{}", case["id"]), ANALYST, b"");
        (detail["case"].clone(), detail["history"].as_array().unwrap().clone())
    }
}

#[test]
fn rechecks_see_each_way_content_goes_and_the_block_list_follows() {
    let temp = tempfile::tempdir().unwrap();
    let picture = std::fs::read(sample("square-256x256.jpg")).unwrap();
    let other = std::fs::read(sample("q1050.jpg")).unwrap();
    let (stays, not_found, swapped, refused) = (
        Origin::serving(picture.clone()),
        Origin::serving(picture.clone()),
        Origin::serving(picture.clone()),
        Origin::serving(picture.clone()),
    );
    let urls: Vec<String> =
        [&stays, &not_found, &swapped, &refused].iter().map(|o| o.url("/a.jpg")).collect();
    // The hotline's IP databases, generated: loopback is hosted in NL, in AS 64500.
    let (country, asn) = (temp.path().join("country.mmdb"), temp.path().join("asn.mmdb"));
    let loopback: Network = "127.0.0.0/8".parse().unwrap();
    std::fs::write(&country, mmdb::write_country_db(&[(loopback, "NL")])).unwrap();
    std::fs::write(&asn, mmdb::write_asn_db(&[(loopback, 64500, "Test Hosting NL")])).unwrap();
    let databases = format!("home_country = \"NL\"\nip_databases = [{country:?}, {asn:?}]");
    let daemon = start_with(temp.path(), 1, 2, &databases, "");
    let api = Api::of(&daemon);
    let group = api.report_all(&urls);
    api.confirm(group);
    let cases = api.cases();
    assert_eq!(cases.len(), 4, "a case per URL: {cases:?}");
    assert!(cases.values().all(|case| case["state"] == "open" && case["abroad"] == false));
    let hosting = json!({"country": "NL", "asn": 64500, "network": "Test Hosting NL"});
    assert!(cases.values().all(|case| case["location"]["hosting"] == hosting), "{cases:?}");

    let list = request(api.address, "GET", "/v1/takedown/blocklist?format=plain", Some(ISP), b"");
    assert_eq!(list.status, 200);
    let mut expected: Vec<&str> = urls.iter().map(String::as_str).collect();
    expected.sort_unstable();
    assert_eq!(String::from_utf8_lossy(&list.body).lines().collect::<Vec<_>>(), expected);
    let etag = list.header("etag").unwrap().to_string();
    let unchanged = request_with(
        api.address,
        "GET",
        "/v1/takedown/blocklist?format=plain",
        Some(ISP),
        &[&format!("If-None-Match: {etag}")],
        b"",
    );
    assert_eq!(unchanged.status, 304);

    // The first checks see the content everywhere; then three hosts take it down.
    wait_for("a first check of every case", Duration::from_secs(20), || {
        api.cases().values().all(|case| case["checks"].as_u64() >= Some(1))
    });
    not_found.set(Behaviour::Status(404));
    swapped.set(Behaviour::Serve(other));
    refused.close();
    wait_for("three removals seen", Duration::from_secs(20), || {
        api.cases().values().filter(|case| case["state"] == "removed").count() == 3
    });
    let cases = api.cases();
    let sign = |origin: &Origin| cases[&origin.url("/a.jpg")]["removed"].clone();
    assert_eq!(sign(&not_found)["sign"], "not_found");
    assert_eq!(sign(&not_found)["status"], 404);
    assert_eq!(sign(&swapped)["sign"], "other_content");
    assert_eq!(sign(&refused)["sign"], "connection_refused");
    let kept = &cases[&stays.url("/a.jpg")];
    assert_eq!(kept["state"], "open", "still online, and no notice yet: {kept}");
    assert!(kept["removed"].is_null());
    let (_, history) = api.detail(kept);
    assert!(
        history.iter().any(|event| event["event"] == "checked" && event["finding"]["finding"] == "online")
    );

    // Only the URL still online is blocked, under a new validator.
    let list = request(api.address, "GET", "/v1/takedown/blocklist?format=plain", Some(ISP), b"");
    assert_eq!(String::from_utf8_lossy(&list.body).lines().collect::<Vec<_>>(), [stays.url("/a.jpg")]);
    assert_ne!(list.header("etag").unwrap(), etag);
    let stale = request_with(
        api.address,
        "GET",
        "/v1/takedown/blocklist?format=plain",
        Some(ISP),
        &[&format!("If-None-Match: {etag}")],
        b"",
    );
    assert_eq!(stale.status, 200, "an old ETag gets the new list");

    let metrics = request(api.address, "GET", "/metrics", None, b"");
    let samples = parse_openmetrics(&String::from_utf8_lossy(&metrics.body));
    let value = |name: &str, label: (&str, &str)| {
        samples
            .iter()
            .find(|(n, labels, _)| n == name && labels.get(label.0).map(String::as_str) == Some(label.1))
            .map(|s| s.2)
    };
    assert_eq!(value("hashsieve_takedown_cases", ("state", "removed")), Some(3.0));
    assert_eq!(value("hashsieve_takedown_cases", ("state", "open")), Some(1.0));
    assert!(value("hashsieve_takedown_checks_total", ("finding", "online")) >= Some(4.0));
    assert_eq!(value("hashsieve_takedown_checks_total", ("finding", "gone_not_found")), Some(1.0));
    assert!(value("hashsieve_takedown_time_seconds", ("stage", "removal")).is_some());
    let figures = api.ok("GET", "/v1/takedown/figures", ANALYST, b"");
    assert_eq!(figures["by_country"]["NL"]["to_removal"]["count"], 3);
    assert_eq!(figures["by_network"]["AS64500 Test Hosting NL"]["cases"], 4);
}

#[test]
fn a_url_joins_the_block_list_when_its_grace_period_ends() {
    let temp = tempfile::tempdir().unwrap();
    let origin = Origin::serving(std::fs::read(sample("square-256x256.jpg")).unwrap());
    let url = origin.url("/a.jpg");
    let daemon = start_with(temp.path(), 60, 2, "block_after_secs = 2", "");
    let api = Api::of(&daemon);
    let group = api.report_all(std::slice::from_ref(&url));
    api.confirm(group);
    let confirmed = std::time::Instant::now();
    let list = request(api.address, "GET", "/v1/takedown/blocklist?format=plain", Some(ISP), b"");
    assert_eq!((list.status, list.body.len()), (200, 0), "within the grace period: not listed");
    let etag = list.header("etag").unwrap().to_string();
    // Nothing about the case changes when the grace period ends: the list must change anyway.
    std::thread::sleep(Duration::from_millis(2500).saturating_sub(confirmed.elapsed()));
    let list = request_with(
        api.address,
        "GET",
        "/v1/takedown/blocklist?format=plain",
        Some(ISP),
        &[&format!("If-None-Match: {etag}")],
        b"",
    );
    assert_eq!(list.status, 200, "the list changed");
    assert_eq!(String::from_utf8_lossy(&list.body).trim(), url);
    assert_ne!(list.header("etag").unwrap(), etag);
}

#[test]
fn rechecks_of_one_host_stay_within_its_limit() {
    let temp = tempfile::tempdir().unwrap();
    let picture = std::fs::read(sample("square-256x256.jpg")).unwrap();
    let host = Origin::serving(picture);
    let urls: Vec<String> = (0..6).map(|i| host.url(&format!("/{i}.jpg"))).collect();
    let daemon = start(temp.path(), 1, 2);
    let api = Api::of(&daemon);
    let group = api.report_all(&urls);
    let reports = host.requests();
    host.delay(Duration::from_millis(300));
    api.confirm(group);
    wait_for("two rounds of checks", Duration::from_secs(30), || {
        api.cases().values().all(|case| case["checks"].as_u64() >= Some(2))
    });
    assert!(host.requests() >= reports + 12);
    assert_eq!(host.most_at_once(), 2, "six cases due at once, two checks of the host at a time");
}

#[test]
fn a_daemon_killed_during_rechecks_loses_no_case_and_checks_no_slot_twice() {
    let temp = tempfile::tempdir().unwrap();
    let picture = std::fs::read(sample("square-256x256.jpg")).unwrap();
    let host = Origin::serving(picture);
    host.delay(Duration::from_millis(50));
    let urls: Vec<String> = (0..4).map(|i| host.url(&format!("/{i}.jpg"))).collect();
    {
        let daemon = start(temp.path(), 1, 2);
        let api = Api::of(&daemon);
        let group = api.report_all(&urls);
        api.confirm(group);
    }
    let mut checks_before = 0;
    for trial in 0..3u64 {
        let mut daemon = start(temp.path(), 1, 2);
        // Killed once it has recorded a check of its own, at a different point of the next
        // check cycle each time (waiting for the check, not for a time, however busy the
        // machine is).
        let api = Api::of(&daemon);
        wait_for("a re-check by this daemon", Duration::from_secs(60), || {
            api.cases().values().filter_map(|case| case["checks"].as_u64()).sum::<u64>()
                > checks_before as u64
        });
        std::thread::sleep(Duration::from_millis(20 + 150 * trial));
        daemon.child.kill().unwrap();
        daemon.child.wait().unwrap();
        let daemon = start(temp.path(), 1, 2);
        let api = Api::of(&daemon);
        let cases = api.cases();
        assert_eq!(cases.len(), 4, "trial {trial}: no case lost or added");
        let mut checks = 0;
        for case in cases.values() {
            let (case, history) = api.detail(case);
            let slots: Vec<u64> = history
                .iter()
                .filter(|event| event["event"] == "checked")
                .map(|event| event["slot"].as_u64().unwrap())
                .collect();
            let expected: Vec<u64> = (0..slots.len() as u64).collect();
            assert_eq!(slots, expected, "trial {trial}: each slot once, in order");
            assert_eq!(case["checks"].as_u64(), Some(slots.len() as u64));
            checks += slots.len();
        }
        assert!(checks > checks_before, "trial {trial}: no recorded check lost");
        checks_before = checks;
    }
}

#[test]
fn notices_reach_the_contacts_webhook_retried_after_a_failure_and_are_listed_without_one() {
    let temp = tempfile::tempdir().unwrap();
    let picture = std::fs::read(sample("square-256x256.jpg")).unwrap();
    let (known_host, unknown_host) = (Origin::serving(picture.clone()), Origin::serving(picture));
    let receiver = Origin::start(Behaviour::Status(500));
    // The contact is found by host: loopback's address literal, with its port left out.
    let contact = format!(
        "[[takedown.contacts]]\nname = \"Loopback Hosting abuse desk\"\nhost = \"127.0.0.1\"\nwebhook = \"{}\"\n",
        receiver.url("/notices")
    );
    let daemon = start_with(temp.path(), 3600, 2, "", &contact);
    let api = Api::of(&daemon);
    // Two URLs: one on the contact's host, one on a name with no contact.
    let urls = [known_host.url("/a.jpg"), unknown_host.url("/b.jpg").replace("127.0.0.1", "localhost")];
    let group = api.report_all(&urls);
    api.confirm(group);

    wait_for("a first delivery attempt", Duration::from_secs(20), || !receiver.received().is_empty());
    receiver.set(Behaviour::Status(204));
    wait_for("the notice delivered", Duration::from_secs(20), || {
        api.cases().values().any(|case| case["state"] == "notified")
    });
    let cases = api.cases();
    let noticed = &cases[&urls[0]];
    let (_, history) = api.detail(noticed);
    let events: Vec<&str> = history.iter().map(|event| event["event"].as_str().unwrap()).collect();
    assert_eq!(events, ["opened", "notice_failed", "notified"], "{history:?}");
    assert_eq!(history[1]["attempt"], 1);
    assert_eq!(history[2]["delivery"]["attempt"], 2);
    assert_eq!(history[2]["delivery"]["channel"], "webhook");
    let received = receiver.received();
    assert_eq!(received.len(), 2, "one failure, one delivery");
    let notices: Vec<Value> = received
        .iter()
        .map(|(line, body)| {
            assert!(line.starts_with("POST /notices "), "{line}");
            serde_json::from_slice(body).unwrap()
        })
        .collect();
    assert_eq!(notices[0], notices[1], "a retry is the same notice, with the same id");
    assert_eq!(notices[0]["format"], "hashsieve-notice/1");
    assert_eq!(notices[0]["url"], urls[0].as_str());
    assert_eq!(notices[0]["case"], noticed["id"]);
    assert_eq!(notices[0]["hashes"]["md5"].as_str().map(str::len), Some(32));

    // The host without a contact: still open, its notice listed for sending by hand.
    let other = &cases[&urls[1]];
    assert_eq!(other["state"], "open");
    let page = api.ok("GET", "/v1/takedown/notices", ANALYST, b"");
    let listed: Vec<&Value> = page["notices"].as_array().unwrap().iter().collect();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["url"], urls[1].as_str());
    assert_eq!(page["next"], Value::Null, "the last page");
    let after = api.ok("GET", &format!("/v1/takedown/notices?after={}", other["id"]), ANALYST, b"");
    assert_eq!(after["notices"], json!([]), "nothing after the last");
    let bad = request(api.address, "GET", "/v1/takedown/notices?limit=many", Some(ANALYST), b"");
    assert_eq!(bad.status, 400);
    assert_eq!(receiver.received().len(), 2, "nothing was posted for it");
}
