//! Hotline ingest through the real `hashsieved` and a real `redis-server`: reports pushed to
//! the reports stream come out of the hashed stream once each, with digests that `md5sum`
//! agrees with and the lists' matches; reported URLs are fetched (a local origin allowed by
//! the test's policy) and hostile ones refused; and when a daemon is killed with SIGKILL in
//! the middle of its reports, another daemon of the group takes them over: every report gets
//! exactly one result.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use hashsieve_core::hashes::HashKind;
use hashsieve_core::import::ImportedEntry;
use hashsieve_core::index::dir::IndexDir;
use hashsieve_core::index::{IndexBuilder, ListOptions};
use hashsieve_core::matcher::Matcher;
use hashsieve_core::signals::Signals;
use hashsieve_triage::model::{Disposition, Report, VerdictKind};
use hashsieve_triage::{Triage, TriageOptions};
use redis::Value;

mod daemon_support;
use daemon_support::{
    Hashsieved, RedisServer, SAMPLE_IMAGES as IMAGES, md5sum, origin, pdq_distance, reencoded, sample,
};
use hashsieve_testkit::wait_for;

/// An index directory whose list `hot` holds the MD5s of the demo MD5 list.
fn index(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("index");
    let mut builder = IndexBuilder::new();
    let hot = builder.add_list(ListOptions::new("hot")).unwrap();
    let demo = std::fs::read_to_string(sample("../demo-md5.txt")).unwrap();
    for line in demo.lines().filter(|line| !line.starts_with('#') && !line.trim().is_empty()) {
        let md5 = line.split_whitespace().next().unwrap();
        builder.add(hot, &ImportedEntry::new(HashKind::Md5, hex::decode(md5).unwrap())).unwrap();
    }
    IndexDir::create(&path, &builder).unwrap();
    path
}

/// Starts a daemon consuming `redis` as `consumer`, with a short take-over time.
fn daemon(dir: &Path, index: &Path, redis: &str, consumer: &str, workers: usize) -> Hashsieved {
    daemon_with(dir, index, redis, consumer, &format!("workers = {workers}"), "")
}

/// A daemon with more `[ingest]` settings and more tables.
fn daemon_with(
    dir: &Path,
    index: &Path,
    redis: &str,
    consumer: &str,
    ingest: &str,
    tables: &str,
) -> Hashsieved {
    let config = dir.join(format!("{consumer}.toml"));
    std::fs::write(
        &config,
        format!(
            "index = {index:?}\n[http]\nlisten = \"127.0.0.1:0\"\n[ingest]\nredis_url = \"{redis}\"\n\
             consumer = \"{consumer}\"\n{ingest}\nbatch = 4\nblock_ms = 100\nclaim_idle_ms = 1000\n\
             [fetch]\nallow_networks = [\"127.0.0.1/32\"]\ntotal_timeout_ms = 5000\n{tables}"
        ),
    )
    .unwrap();
    Hashsieved::start(&config, 1)
}

fn push(connection: &mut redis::Connection, fields: &[(&str, &[u8])]) {
    let mut command = redis::cmd("XADD");
    command.arg("hashsieve:reports").arg("*");
    for (name, value) in fields {
        command.arg(*name).arg(*value);
    }
    let _: String = command.query(connection).unwrap();
}

/// Every hashed entry: report id → the entries published for it (field → text).
fn hashed(connection: &mut redis::Connection) -> BTreeMap<String, Vec<BTreeMap<String, String>>> {
    entries(connection, "hashsieve:hashed")
}

/// Every entry of `stream`, by report id.
fn entries(
    connection: &mut redis::Connection,
    stream: &str,
) -> BTreeMap<String, Vec<BTreeMap<String, String>>> {
    let reply: Value = redis::cmd("XRANGE").arg(stream).arg("-").arg("+").query(connection).unwrap();
    let Value::Array(entries) = reply else { panic!("XRANGE gives an array") };
    let mut out: BTreeMap<String, Vec<BTreeMap<String, String>>> = BTreeMap::new();
    for entry in entries {
        let Value::Array(pair) = entry else { panic!() };
        let Value::Array(fields) = &pair[1] else { panic!() };
        let text = |value: &Value| match value {
            Value::BulkString(bytes) => String::from_utf8_lossy(bytes).into_owned(),
            other => panic!("{other:?}"),
        };
        let map: BTreeMap<String, String> =
            fields.chunks(2).map(|pair| (text(&pair[0]), text(&pair[1]))).collect();
        out.entry(map["report_id"].clone()).or_default().push(map);
    }
    out
}

/// Reports delivered to a daemon and not acknowledged.
fn pending(connection: &mut redis::Connection) -> i64 {
    let reply: Value =
        redis::cmd("XPENDING").arg("hashsieve:reports").arg("hashsieve-hashing").query(connection).unwrap();
    let Value::Array(summary) = reply else { panic!("XPENDING gives an array") };
    let Value::Int(count) = summary[0] else { panic!("a count first") };
    count
}

#[test]
fn reports_are_fetched_or_taken_hashed_matched_and_published_once() {
    let temp = tempfile::tempdir().unwrap();
    let index = index(temp.path());
    let redis_server = RedisServer::start();
    let client = redis::Client::open(redis_server.url.as_str()).unwrap();
    let mut connection = client.get_connection().unwrap();
    let listed: Vec<String> =
        std::fs::read_to_string(sample("../demo-md5.txt")).unwrap().lines().map(str::to_string).collect();

    for name in IMAGES {
        let content = std::fs::read(sample(name)).unwrap();
        push(
            &mut connection,
            &[("report_id", name.as_bytes()), ("content", &content), ("source", b"web form")],
        );
    }
    // A reporter's retry: the same report again. Two workers may hash both at once, and either
    // may be the one published, so the retry carries the same fields as the first.
    push(
        &mut connection,
        &[
            ("report_id", b"wee.jpg"),
            ("content", &std::fs::read(sample("wee.jpg")).unwrap()),
            ("source", b"web form"),
        ],
    );
    let site = origin(std::fs::read(sample("q0122.jpg")).unwrap());
    push(
        &mut connection,
        &[("report_id", b"by-url"), ("url", format!("http://{site}/reported.jpg").as_bytes())],
    );
    push(
        &mut connection,
        &[("report_id", b"metadata"), ("url", b"http://169.254.169.254/latest/meta-data/")],
    );
    push(&mut connection, &[("report_id", b"decimal-loopback"), ("url", b"http://2130706433:6379/")]);
    push(&mut connection, &[("content", b"no id")]);
    push(&mut connection, &[("report_id", b"empty")]);

    let _daemon = daemon(temp.path(), &index, &redis_server.url, "a", 2);
    wait_for("every report hashed", Duration::from_secs(30), || hashed(&mut connection).len() == 12);
    // Results are published and acknowledged in one script: once none is pending, no more come.
    wait_for("every report acknowledged", Duration::from_secs(10), || pending(&mut connection) == 0);
    let results = hashed(&mut connection);
    assert!(results.values().all(|entries| entries.len() == 1), "one result per report: {results:?}");
    let one = |id: &str| results[id][0].clone();
    for name in IMAGES {
        let entry = one(name);
        let md5 = md5sum(&sample(name));
        assert_eq!(entry["md5"], md5, "{name}");
        assert_eq!(entry["pdq"].len(), 64, "{name} has a PDQ hash");
        let variants: Vec<&str> = entry["pdq_dihedral"].split(',').collect();
        assert_eq!((variants.len(), variants[0]), (8, entry["pdq"].as_str()), "{name}: the original first");
        assert_eq!(entry["sha256"].len(), 64);
        let expected = if listed.iter().any(|line| line.starts_with(&md5)) { "known" } else { "unknown" };
        assert_eq!(entry["known"], expected, "{name}");
        if expected == "known" {
            assert!(entry["matches"].contains("\"list\":\"hot\""), "{entry:?}");
        }
        assert!(!entry.contains_key("content"), "content is never published");
    }
    assert_eq!(one("wee.jpg")["source"], "web form");
    let by_url = one("by-url");
    assert_eq!(by_url["md5"], md5sum(&sample("q0122.jpg")));
    assert_eq!(by_url["known"], "known");
    assert_eq!(by_url["final_url"], format!("http://{site}/reported.jpg"));
    for refused in ["metadata", "decimal-loopback"] {
        let entry = one(refused);
        assert!(entry["error"].starts_with("fetch: "), "{entry:?}");
        assert!(!entry.contains_key("md5"));
    }
    assert!(one("empty")["error"].contains("neither url nor content"));
    let anonymous: Vec<_> = results.keys().filter(|id| id.starts_with("entry ")).collect();
    assert_eq!(anonymous.len(), 1, "the report without an id is answered under its entry id");
}

#[test]
fn a_daemon_killed_mid_batch_loses_nothing_and_duplicates_nothing() {
    let temp = tempfile::tempdir().unwrap();
    let index = index(temp.path());
    let redis_server = RedisServer::start();
    let client = redis::Client::open(redis_server.url.as_str()).unwrap();
    let mut connection = client.get_connection().unwrap();
    // 300 reports: the sample images, each made distinct by a trailing byte (still decodable).
    let images: Vec<Vec<u8>> = IMAGES.iter().map(|name| std::fs::read(sample(name)).unwrap()).collect();
    let mut expected = BTreeMap::new();
    for i in 0..300 {
        let mut content = images[i % images.len()].clone();
        content.extend_from_slice(format!("{i}").as_bytes());
        let id = format!("r-{i:03}");
        expected.insert(id.clone(), hashsieve_core::digest::digest_bytes(&content, "md5".parse().unwrap()));
        push(&mut connection, &[("report_id", id.as_bytes()), ("content", &content)]);
    }

    let mut first = daemon(temp.path(), &index, &redis_server.url, "first", 2);
    wait_for("the first daemon to be under way", Duration::from_secs(30), || {
        hashed(&mut connection).len() >= 20
    });
    first.child.kill().unwrap(); // SIGKILL, in the middle of its reports
    first.child.wait().unwrap();
    let done_by_first = hashed(&mut connection).len();
    assert!(done_by_first < 300, "killed before the end ({done_by_first} done)");
    assert!(pending(&mut connection) > 0, "it died holding reports");

    let _second = daemon(temp.path(), &index, &redis_server.url, "second", 2);
    wait_for("every report hashed", Duration::from_secs(60), || hashed(&mut connection).len() == 300);
    // Results are published and acknowledged in one script: once none is pending, no more come.
    wait_for("every report acknowledged", Duration::from_secs(10), || pending(&mut connection) == 0);
    let results = hashed(&mut connection);
    assert_eq!(results.len(), 300, "no report lost");
    for (id, entries) in &results {
        assert_eq!(entries.len(), 1, "{id}: exactly one result");
        assert_eq!(entries[0]["md5"], hex::encode(expected[id].md5.unwrap()), "{id}");
    }
    assert_eq!(pending(&mut connection), 0, "nothing left pending");
}

#[test]
fn the_deciding_daemon_confirms_known_inherits_verdicts_and_groups_the_new() {
    let temp = tempfile::tempdir().unwrap();
    let index = index(temp.path());
    let store = temp.path().join("triage.redb");
    let read = |name: &str| std::fs::read(sample(name)).unwrap();
    // An analyst already assessed q1050.jpg: illegal, category A.
    {
        let mut triage = Triage::open(&store, TriageOptions::default()).unwrap();
        let signals = Signals::from_bytes(&read("q1050.jpg"), &Triage::signal_options());
        let empty = Matcher::from_bytes(IndexBuilder::new().to_vec()).unwrap();
        let report = Report { id: "earlier".into(), source: "upload".into(), reported_ms: 0, location: None };
        let Disposition::New { group, .. } = triage.submit(&report, &signals, &empty).unwrap() else {
            panic!("the store was empty")
        };
        let verdict = VerdictKind::Illegal { category: "A".into() };
        triage.assess_group(group, verdict, "analyst-1", None).unwrap();
    }
    let q1050_again = reencoded(&read("q1050.jpg"), 90);
    let square_again = reencoded(&read("square-256x256.jpg"), 90);
    // The oracle for what must be near: core's PDQ distance, under the threshold of 31.
    assert!(pdq_distance(&read("q1050.jpg"), &q1050_again) <= 31);
    assert!(pdq_distance(&read("square-256x256.jpg"), &square_again) <= 31);
    assert!(pdq_distance(&read("square-256x256.jpg"), &read("labelme-q0291.png")) > 31);

    let redis_server = RedisServer::start();
    let client = redis::Client::open(redis_server.url.as_str()).unwrap();
    let mut connection = client.get_connection().unwrap();
    let reports: Vec<(&str, Vec<u8>)> = vec![
        ("listed", read("wee.jpg")),
        ("same-bytes", read("q1050.jpg")),
        ("reencoded", q1050_again),
        ("new-1", read("square-256x256.jpg")),
        ("new-1-copy", square_again),
        ("new-2", read("labelme-q0291.png")),
        ("new-2", read("labelme-q0291.png")),
    ];
    for (id, content) in &reports {
        push(&mut connection, &[("report_id", id.as_bytes()), ("content", content)]);
    }
    push(&mut connection, &[("report_id", b"unfetchable"), ("url", b"http://10.0.0.1/a.jpg")]);
    let triage = format!("[triage]\nstore = {store:?}\n");
    let _daemon = daemon_with(temp.path(), &index, &redis_server.url, "decider", "workers = 2", &triage);
    wait_for("every report decided", Duration::from_secs(30), || {
        entries(&mut connection, "hashsieve:results").len() == 7
    });
    // Results are published and acknowledged in one script: once none is pending, no more come.
    wait_for("every report acknowledged", Duration::from_secs(10), || pending(&mut connection) == 0);
    let results = entries(&mut connection, "hashsieve:results");
    assert!(results.values().all(|entries| entries.len() == 1), "one decision per report: {results:?}");
    let decision = |id: &str| -> (String, serde_json::Value) {
        let entry = &results[id][0];
        let json = entry.get("decision").map(|text| serde_json::from_str(text).unwrap()).unwrap_or_default();
        (entry["outcome"].clone(), json)
    };
    assert_eq!(decision("listed").0, "known");
    for id in ["same-bytes", "reencoded"] {
        let (outcome, json) = decision(id);
        assert_eq!(outcome, "previously_assessed", "{id}");
        assert_eq!(json["verdict"]["kind"], "illegal", "{id}: {json}");
        assert_eq!(json["verdict"]["category"], "A", "{id}: {json}");
    }
    assert_eq!(decision("same-bytes").1["distance"], 0);
    let (new_1, new_1_copy, new_2) = (decision("new-1"), decision("new-1-copy"), decision("new-2"));
    assert_eq!((new_1.0.as_str(), new_1_copy.0.as_str(), new_2.0.as_str()), ("new", "new", "new"));
    assert_eq!(new_1.1["group"], new_1_copy.1["group"], "near-duplicates share a review group");
    assert_ne!(new_1.1["group"], new_2.1["group"], "a different picture gets its own group");
    let (outcome, _) = decision("unfetchable");
    assert_eq!(outcome, "error");
    assert!(results["unfetchable"][0]["error"].starts_with("fetch: "));
}
