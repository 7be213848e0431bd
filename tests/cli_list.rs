//! End-to-end tests of `hashsieve list` on an index directory, through the real binary:
//! changes and what queries see afterwards, refreshes that write only the difference, and the
//! directory's files truncated or damaged.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn hashsieve(args: &[&str]) -> Output {
    hashsieve_testkit::run(env!("CARGO_BIN_EXE_hashsieve"), args)
}

fn ok(args: &[&str]) -> String {
    let output = hashsieve(args);
    assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn md5(n: u32) -> String {
    format!("{:032x}", u128::from(n) * 0x9e37_79b9_7f4a_7c15 + 1)
}

/// A directory whose base lists `base` MD5 entries in list "hot", with ids.
fn create(temp: &Path, base: u32) -> PathBuf {
    let list = temp.join("hot.csv");
    let mut csv = String::from("md5,id,category\n");
    for n in 0..base {
        csv.push_str(&format!("{},id-{n},A{}\n", md5(n), n % 3));
    }
    std::fs::write(&list, csv).unwrap();
    let dir = temp.join("index");
    ok(&[
        "index",
        "build",
        "--dir",
        dir.to_str().unwrap(),
        "--list",
        &format!("hot={}", list.display()),
        "--kind",
        "md5",
    ]);
    dir
}

/// (outcome, [(list, id, suppressed)]) for one MD5 through `hashsieve match`.
fn matched(dir: &Path, value: &str) -> (String, Vec<(String, String, bool)>) {
    let output = hashsieve(&["match", "--index", dir.to_str().unwrap(), &format!("md5:{value}")]);
    let rows: Vec<Value> =
        String::from_utf8_lossy(&output.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let outcome = rows.first().map_or("unknown".to_string(), |r| r["outcome"].as_str().unwrap().to_string());
    let expected_status = if outcome == "unknown" { 0 } else { 1 };
    assert_eq!(output.status.code(), Some(expected_status), "{}", String::from_utf8_lossy(&output.stderr));
    let matches = rows
        .iter()
        .map(|r| {
            (
                r["list"].as_str().unwrap().to_string(),
                r["entry_id"].as_str().unwrap_or("").to_string(),
                r.get("suppressed_by").is_some(),
            )
        })
        .collect();
    (outcome, matches)
}

fn log_changes(dir: &Path) -> Vec<Vec<Value>> {
    ok(&["list", "log", dir.to_str().unwrap(), "--json"])
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["changes"].as_array().unwrap().clone())
        .collect()
}

#[test]
fn changes_are_seen_by_queries_and_survive_compaction() {
    let temp = tempfile::tempdir().unwrap();
    let dir = create(temp.path(), 10);
    let d = dir.to_str().unwrap();

    let out = ok(&[
        "list",
        "add",
        d,
        "--list",
        "hot",
        &format!("md5:{}", md5(100)),
        "--id",
        "new-1",
        "--actor",
        "analyst",
    ]);
    assert!(out.contains("1 added") && out.contains("durable"), "{out}");
    assert_eq!(matched(&dir, &md5(100)), ("known".into(), vec![("hot".into(), "new-1".into(), false)]));

    // A withdrawal by id hides an entry of the index file.
    ok(&["list", "remove", d, "--list", "hot", "--id", "id-3"]);
    assert_eq!(matched(&dir, &md5(3)).0, "unknown");
    // By hash, in every list.
    let out = ok(&["list", "remove", d, &format!("md5:{}", md5(4))]);
    assert!(out.contains("1 withdrawn"), "{out}");
    assert_eq!(matched(&dir, &md5(4)).0, "unknown");

    // An allow-list entry suppresses the match but it is still reported, marked.
    ok(&["list", "allow", d, &format!("md5:{}", md5(5)), "--category", "vendor-logo"]);
    assert_eq!(matched(&dir, &md5(5)), ("unknown".into(), vec![("hot".into(), "id-5".into(), true)]));

    // A name that is not a list is refused and nothing is written.
    let refused = hashsieve(&["list", "add", d, "--list", "typo", &format!("md5:{}", md5(1))]);
    assert_eq!(refused.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("no list named \"typo\""));
    assert_eq!(log_changes(&dir).len(), 4);

    let out = ok(&["list", "compact", d]);
    assert!(out.contains("compacted into generation 2"), "{out}");
    assert_eq!(log_changes(&dir).len(), 0, "the log starts empty after compaction");
    assert_eq!(matched(&dir, &md5(100)).0, "known");
    assert_eq!(matched(&dir, &md5(3)).0, "unknown");
    assert_eq!(matched(&dir, &md5(4)).0, "unknown");
    assert_eq!(matched(&dir, &md5(5)), ("unknown".into(), vec![("hot".into(), "id-5".into(), true)]));
    assert_eq!(matched(&dir, &md5(6)).0, "known");
    assert!(ok(&["index", "verify", d]).contains("OK"));
}

#[test]
fn a_refresh_writes_only_the_difference() {
    let temp = tempfile::tempdir().unwrap();
    let dir = create(temp.path(), 2000);
    // The next version: two entries gone, one recategorised, three new; 1,997 unchanged.
    let mut csv = String::from("md5,id,category\n");
    for n in 2..2003u32 {
        let category = if n == 10 { "B2".to_string() } else { format!("A{}", n % 3) };
        csv.push_str(&format!("{},id-{n},{category}\n", md5(n)));
    }
    let list = temp.path().join("hot-v2.csv");
    std::fs::write(&list, csv).unwrap();
    let out = ok(&[
        "list",
        "refresh",
        dir.to_str().unwrap(),
        "--list",
        &format!("hot={}", list.display()),
        "--kind",
        "md5",
    ]);
    assert!(out.contains("2001 entries; 4 added or changed, 2 withdrawn, 1997 unchanged"), "{out}");
    let batches = log_changes(&dir);
    assert_eq!(batches.len(), 1);
    assert_eq!(batches[0].len(), 6, "two removals and four adds: {:?}", batches[0]);
    assert_eq!(matched(&dir, &md5(0)).0, "unknown");
    assert_eq!(matched(&dir, &md5(2002)).0, "known");
    let dump = ok(&["list", "dump", dir.to_str().unwrap()]);
    assert_eq!(dump.lines().count(), 2001);
    assert!(dump.contains(&format!("\"value\":\"{}\",\"id\":\"id-10\",\"category\":\"B2\"", md5(10))));
    // The same file again changes nothing.
    let out = ok(&[
        "list",
        "refresh",
        dir.to_str().unwrap(),
        "--list",
        &format!("hot={}", list.display()),
        "--kind",
        "md5",
    ]);
    assert!(out.contains("0 added or changed, 0 withdrawn, 2001 unchanged"), "{out}");
    assert_eq!(log_changes(&dir).len(), 1);
}

fn only_file(dir: &Path, prefix: &str) -> PathBuf {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .collect();
    assert_eq!(files.len(), 1);
    files.pop().unwrap()
}

/// Cut at every byte, the log keeps exactly its whole batches; damage before a valid batch
/// stops opening (acknowledged changes would be lost) until `list repair` cuts it explicitly.
#[test]
fn truncated_and_damaged_logs() {
    let temp = tempfile::tempdir().unwrap();
    let dir = create(temp.path(), 3);
    let d = dir.to_str().unwrap();
    for n in 0..3 {
        ok(&["list", "add", d, "--list", "hot", &format!("md5:{}", md5(50 + n))]);
    }
    let log = only_file(&dir, "delta-");
    let bytes = std::fs::read(&log).unwrap();
    let record = (bytes.len() - 32) / 3;
    for cut in (32..bytes.len()).step_by(7).chain([bytes.len() - 1]) {
        std::fs::write(&log, &bytes[..cut]).unwrap();
        let whole = (cut - 32) / record;
        let out = ok(&["index", "verify", d]);
        assert!(out.contains(&format!("{whole} batches")), "cut at {cut}: {out}");
        assert_eq!(out.contains("torn write"), cut != 32 + whole * record, "cut at {cut}: {out}");
        for n in 0..3 {
            let expected = if (n as usize) < whole { "known" } else { "unknown" };
            assert_eq!(matched(&dir, &md5(50 + n)).0, expected, "cut at {cut}");
        }
    }
    // A writable open cuts the torn tail for good, and new batches follow the last whole one.
    std::fs::write(&log, &bytes[..bytes.len() - 5]).unwrap();
    ok(&["list", "add", d, "--list", "hot", &format!("md5:{}", md5(60))]);
    assert!(!ok(&["index", "verify", d]).contains("torn write"));
    assert_eq!(log_changes(&dir).len(), 3);

    // A flipped bit in the first batch, with valid batches after it.
    let mut damaged = std::fs::read(&log).unwrap();
    damaged[32 + 20] ^= 0x10;
    std::fs::write(&log, &damaged).unwrap();
    let refused = hashsieve(&["list", "add", d, "--list", "hot", &format!("md5:{}", md5(61))]);
    assert_eq!(refused.status.code(), Some(3));
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(message.contains("valid changes follow") && message.contains("list repair"), "{message}");
    assert!(!hashsieve(&["index", "verify", d]).status.success());
    let out = ok(&["list", "repair", d]);
    assert!(out.contains("cut at byte 32") && out.contains("dropped"), "{out}");
    assert!(ok(&["index", "verify", d]).contains("0 batches"));
}

#[test]
fn a_damaged_index_file_in_a_directory_fails_verification() {
    let temp = tempfile::tempdir().unwrap();
    let dir = create(temp.path(), 50);
    let base = only_file(&dir, "base-");
    let mut bytes = std::fs::read(&base).unwrap();
    // Damage a listed value itself.
    let value = hex::decode(md5(7)).unwrap();
    let at = bytes.windows(16).position(|w| w == value).expect("the value is in the file");
    bytes[at + 3] ^= 1;
    std::fs::write(&base, &bytes).unwrap();
    let output = hashsieve(&["index", "verify", dir.to_str().unwrap()]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("failed verification"));
}

/// `hashsieve serve` answers on loopback with the directory's lists, changes included.
#[test]
fn serve_answers_on_loopback() {
    use std::io::{BufRead, BufReader, Read, Write};
    let temp = tempfile::tempdir().unwrap();
    let dir = create(temp.path(), 5);
    ok(&["list", "add", dir.to_str().unwrap(), "--list", "hot", &format!("md5:{}", md5(77)), "--id", "live"]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_hashsieve"))
        .args(["serve", dir.to_str().unwrap(), "--port", "0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let address = line.trim().strip_prefix("listening on http://").expect(&line).to_string();
    assert!(address.starts_with("127.0.0.1:"), "{address}");
    let body = format!(
        r#"{{"hashes":[{{"kind":"md5","value":"{}"}},{{"kind":"md5","value":"{}"}}]}}"#,
        md5(77),
        md5(99)
    );
    let mut stream = std::net::TcpStream::connect(&address).unwrap();
    write!(
        stream,
        "POST /v1/match/hashes HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    let json: Value = serde_json::from_str(reply.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(json["results"][0]["outcome"], "known");
    assert_eq!(json["results"][0]["matches"][0]["entry_id"], "live");
    assert_eq!(json["results"][1]["outcome"], "unknown");
}
