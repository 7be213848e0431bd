//! End-to-end tests of `hashsieve index`, `match` and `scan`, driving the real binary.
//!
//! References: the system's `md5sum` for the listed digests, the PDQ matching vectors (tests/vectors)
//! (haystack, needles and the expected pairs computed by brute force outside hashsieve).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn hashsieve(args: &[&str]) -> Output {
    hashsieve_testkit::run(env!("CARGO_BIN_EXE_hashsieve"), args)
}

fn root() -> PathBuf {
    hashsieve_testkit::workspace()
}

fn samples() -> String {
    hashsieve_testkit::samples().display().to_string()
}

fn json_lines(output: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&output.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn demo_scan_finds_the_test_signatures_and_exits_1() {
    let output = hashsieve(&["scan", "--demo", &samples()]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let rows = json_lines(&output);
    let found: BTreeSet<(String, String, String)> = rows
        .iter()
        .map(|r| {
            let file =
                Path::new(r["path"].as_str().unwrap()).file_name().unwrap().to_string_lossy().into_owned();
            (file, r["outcome"].as_str().unwrap().to_string(), r["kind"].as_str().unwrap().to_string())
        })
        .collect();
    let expected: BTreeSet<(String, String, String)> = [
        ("labelme-q0291.png", "near_known", "pdq"),
        ("q0122.jpg", "known", "md5"),
        ("q1050.jpg", "near_known", "pdq"),
        ("wee.jpg", "known", "md5"),
    ]
    .into_iter()
    .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
    .collect();
    assert_eq!(found, expected);
    let rotated = rows.iter().find(|r| r["entry_id"] == "demo-labelme-rotated").unwrap();
    assert_eq!(rotated["variant"], "rot90", "listed as a rotated copy, found through a dihedral variant");
    assert!(stderr(&output).contains("scanned 7 files"), "{}", stderr(&output));
}

#[test]
fn build_inspect_verify_match_and_scan_an_index() {
    let dir = tempfile::tempdir().unwrap();
    // An md5sum list made by the system tool, and the PDQ haystack as a plain list.
    let md5sum =
        Command::new("md5sum").arg(root().join("samples/images/square-256x256.jpg")).output().unwrap();
    let md5_list = dir.path().join("known.md5");
    std::fs::write(&md5_list, &md5sum.stdout).unwrap();
    let haystack = root().join("tests/vectors/pdq/matching/haystack.txt");
    let index = dir.path().join("lists.hsidx");
    let output = hashsieve(&[
        "index",
        "build",
        "-o",
        index.to_str().unwrap(),
        "--list",
        &format!("system={}", md5_list.display()),
        "--kind",
        "md5",
        "--list",
        &format!("haystack={}", haystack.display()),
        "--kind",
        "pdq",
        "--pdq-threshold",
        "63",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(stderr(&output).contains("list haystack"), "{}", stderr(&output));

    let output = hashsieve(&["index", "inspect", index.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("md5                  1"), "{text}");
    assert!(text.contains("pdq ≤ 63"), "{text}");
    assert_eq!(hashsieve(&["index", "verify", index.to_str().unwrap()]).status.code(), Some(0));

    // Every needle at the list's threshold of 63: the expected pairs, by haystack value.
    let needles = std::fs::read_to_string(root().join("tests/vectors/pdq/matching/needles.txt")).unwrap();
    let mut args = vec!["match", "--index", index.to_str().unwrap(), "--kind", "pdq"];
    args.extend(needles.lines().filter(|l| !l.is_empty()));
    let output = hashsieve(&args);
    assert_eq!(output.status.code(), Some(1));
    let found: BTreeSet<(String, String, u64)> = json_lines(&output)
        .iter()
        .map(|r| {
            (
                r["query"].as_str().unwrap().into(),
                r["value"].as_str().unwrap().into(),
                r["distance"].as_u64().unwrap(),
            )
        })
        .collect();
    let expected_text =
        std::fs::read_to_string(root().join("tests/vectors/pdq/matching/expected-matches-63.csv")).unwrap();
    let expected: BTreeSet<(String, String, u64)> = expected_text
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[1].to_string(), f[3].to_string(), f[4].parse().unwrap())
        })
        .collect();
    assert_eq!(found, expected);

    let output = hashsieve(&["scan", "--index", index.to_str().unwrap(), "--format", "csv", &samples()]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let csv = String::from_utf8_lossy(&output.stdout);
    assert!(csv.starts_with("path,outcome,list"), "{csv}");
    assert!(csv.lines().any(|l| l.contains("square-256x256.jpg,known,system")), "{csv}");

    // Corrupt one byte inside a section: open still works, verify fails with status 3.
    let mut bytes = std::fs::read(&index).unwrap();
    let at = bytes.len() - 100;
    bytes[at] ^= 0xff;
    std::fs::write(&index, &bytes).unwrap();
    let output = hashsieve(&["index", "verify", index.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(3));
    assert!(stderr(&output).contains("failed verification"), "{}", stderr(&output));
}

#[test]
fn lenient_import_reports_every_skipped_record_and_strict_fails() {
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("mixed.txt");
    std::fs::write(&list, "d41d8cd98f00b204e9800998ecf8427e\nnot-a-hash\n0cc175b9c0f1b6a831c399e269772661\n")
        .unwrap();
    let index = dir.path().join("i.hsidx");
    let base =
        ["index", "build", "-o", index.to_str().unwrap(), "--list", list.to_str().unwrap(), "--kind", "md5"];
    let output = hashsieve(&base);
    assert_eq!(output.status.code(), Some(3));
    assert!(stderr(&output).contains("record 2"), "names the line: {}", stderr(&output));
    assert!(!index.exists(), "a failed build writes nothing");

    let mut lenient = base.to_vec();
    lenient.push("--lenient");
    let output = hashsieve(&lenient);
    assert_eq!(output.status.code(), Some(2), "finished, with skipped records");
    assert!(stderr(&output).contains("2 entries imported, 1 records skipped"), "{}", stderr(&output));
    let output =
        hashsieve(&["match", "--index", index.to_str().unwrap(), "md5:0cc175b9c0f1b6a831c399e269772661"]);
    assert_eq!(output.status.code(), Some(1));
    let output =
        hashsieve(&["match", "--index", index.to_str().unwrap(), "md5:00000000000000000000000000000000"]);
    assert_eq!(output.status.code(), Some(0));
    assert!(output.stdout.is_empty());
}

#[test]
fn a_list_without_a_kind_is_refused() {
    let output = hashsieve(&["index", "build", "-o", "/nonexistent/x", "--list", "whatever.txt"]);
    assert_eq!(output.status.code(), Some(3));
    assert!(stderr(&output).contains("--kind"), "{}", stderr(&output));
}
