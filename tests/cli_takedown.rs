//! End-to-end tests of `hashsieve takedown` through the real binary, on a triage store the
//! library wrote: cases reported at URLs and confirmed illegal, read back as JSON Lines, the
//! block list written atomically, and the documents and figures.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::process::Output;

use hashsieve_core::index::{IndexBuilder, ListOptions};
use hashsieve_core::matcher::Matcher;
use hashsieve_core::signals::Signals;
use hashsieve_triage::location::{Hosting, Location};
use hashsieve_triage::model::{Disposition, Report, VerdictKind};
use hashsieve_triage::takedown::TakedownOptions;
use hashsieve_triage::{Triage, TriageOptions};
use serde_json::Value;

fn hashsieve(args: &[&str]) -> Output {
    hashsieve_testkit::run(env!("CARGO_BIN_EXE_hashsieve"), args)
}

fn ok(args: &[&str]) -> String {
    let output = hashsieve(args);
    assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn lines(text: &str) -> Vec<Value> {
    text.lines().map(|line| serde_json::from_str(line).unwrap()).collect()
}

/// A store with one picture reported at three URLs (hosted in NL, NL and DE, the hotline in
/// NL with a partner in DE), confirmed illegal.
fn store(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("triage.redb");
    let options = TriageOptions {
        takedown: TakedownOptions {
            home_country: Some("NL".into()),
            partners: BTreeMap::from([("DE".into(), "Hotline DE".into())]),
            ..TakedownOptions::default()
        },
        ..TriageOptions::default()
    };
    let mut triage = Triage::open(&path, options).unwrap();
    let mut builder = IndexBuilder::new();
    builder.add_list(ListOptions::new("hotline")).unwrap();
    let matcher = Matcher::from_bytes(builder.to_vec()).unwrap();
    let picture = std::fs::read(hashsieve_testkit::samples().join("q1050.jpg")).unwrap();
    let signals = Signals::from_bytes(&picture, &Triage::signal_options());
    let mut group = None;
    for (i, (url, country)) in
        [("http://a.example/x.jpg", "NL"), ("http://b.example/y.jpg", "NL"), ("http://c.example/z.jpg", "DE")]
            .into_iter()
            .enumerate()
    {
        let mut location = Location::new(url).unwrap();
        location.connected = Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1 + i as u8)));
        location.hosting = Some(Hosting { country: Some(country.into()), asn: Some(64500), network: None });
        let report =
            Report { id: format!("r{i}"), source: url.into(), reported_ms: 1_000, location: Some(location) };
        if let Disposition::New { group: joined, .. } = triage.submit(&report, &signals, &matcher).unwrap() {
            group.get_or_insert(joined);
        }
    }
    triage
        .assess_group(group.unwrap(), VerdictKind::Illegal { category: "A".into() }, "analyst", None)
        .unwrap();
    path
}

#[test]
fn cases_the_block_list_documents_and_figures_come_out_of_a_store() {
    let temp = tempfile::tempdir().unwrap();
    let path = store(temp.path());
    let store = path.to_str().unwrap();

    let cases = lines(&ok(&["takedown", "cases", "--store", store]));
    let states: Vec<(&str, &str)> =
        cases.iter().map(|case| (case["url"].as_str().unwrap(), case["state"].as_str().unwrap())).collect();
    assert_eq!(
        states,
        [
            ("http://a.example/x.jpg", "open"),
            ("http://b.example/y.jpg", "open"),
            ("http://c.example/z.jpg", "referred")
        ]
    );
    let referred =
        lines(&ok(&["takedown", "cases", "--store", store, "--state", "referred", "--country", "de"]));
    assert_eq!(referred.len(), 1);
    let detail = lines(&ok(&["takedown", "case", "--store", store, "1"]));
    assert_eq!(detail[0]["history"][0]["event"], "opened");

    // Within the grace period only the case abroad is blocked; with none, all three.
    let list = temp.path().join("blocklist.txt");
    let list_arg = list.to_str().unwrap();
    ok(&["takedown", "blocklist", "--store", store, "--output", list_arg]);
    assert_eq!(std::fs::read_to_string(&list).unwrap(), "http://c.example/z.jpg\n");
    ok(&["takedown", "blocklist", "--store", store, "--block-after-hours", "0", "--output", list_arg]);
    assert_eq!(std::fs::read_to_string(&list).unwrap().lines().count(), 3);
    assert!(!temp.path().join(".blocklist.txt.partial").exists(), "renamed into place");
    let json: Value =
        serde_json::from_str(&ok(&["takedown", "blocklist", "--store", store, "--format", "json"])).unwrap();
    assert_eq!(json["entries"][0]["whole_host"], false);

    let referrals = lines(&ok(&["takedown", "referrals", "--store", store, "--hotline", "Hotline NL"]));
    assert_eq!(referrals.len(), 1);
    assert_eq!(
        (referrals[0]["country"].as_str(), referrals[0]["referred_to"].as_str()),
        (Some("DE"), Some("Hotline DE"))
    );
    let notices = lines(&ok(&["takedown", "notices", "--store", store, "--reference", "HNL"]));
    let ids: Vec<&str> = notices.iter().map(|notice| notice["notice_id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["HNL-case-1", "HNL-case-2"], "notices at home only");
    let figures = lines(&ok(&["takedown", "figures", "--store", store]));
    assert_eq!(figures[0]["all"]["cases"], 3);
    assert_eq!(figures[0]["by_state"]["referred"], 1);
}

#[test]
fn a_missing_store_is_an_error_and_is_not_created() {
    let temp = tempfile::tempdir().unwrap();
    let missing = temp.path().join("nope.redb");
    let output = hashsieve(&["takedown", "cases", "--store", missing.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&output.stderr).contains("no triage store"));
    assert!(!missing.exists());
}
