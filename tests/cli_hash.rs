//! End-to-end tests of `hashsieve hash`, driving the real binary.
//!
//! References are independent of hashsieve: the PDQ values in `tests/vectors/pdq`, computed
//! with Meta's reference code, and the system's `md5sum`, `sha1sum` and `sha256sum`.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn hashsieve() -> Command {
    Command::new(env!("CARGO_BIN_EXE_hashsieve"))
}

fn vectors_dir() -> PathBuf {
    let dir = hashsieve_testkit::vectors().join("pdq");
    assert!(dir.is_dir(), "the PDQ reference vectors are missing: {}", dir.display());
    dir
}

fn run(args: &[&str]) -> Output {
    hashsieve_testkit::run(env!("CARGO_BIN_EXE_hashsieve"), args)
}

fn json_lines(output: &Output) -> Vec<Value> {
    String::from_utf8(output.stdout.clone())
        .expect("stdout is UTF-8")
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("bad JSON line {line:?}: {e}")))
        .collect()
}

/// `expected.csv` rows keyed by file name: the remaining columns by header name.
fn expected_pdq() -> HashMap<String, HashMap<String, String>> {
    let text = std::fs::read_to_string(vectors_dir().join("expected.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    lines
        .map(|line| {
            let cells: Vec<&str> = line.split(',').collect();
            let row = header.iter().zip(&cells).map(|(h, c)| (h.to_string(), c.to_string())).collect();
            (cells[0].to_string(), row)
        })
        .collect()
}

fn file_name(record: &Value) -> String {
    Path::new(record["path"].as_str().unwrap()).file_name().unwrap().to_string_lossy().into_owned()
}

fn system_digest(tool: &str, path: &Path) -> String {
    let out = Command::new(tool).arg(path).output().unwrap_or_else(|e| panic!("{tool} runs: {e}"));
    String::from_utf8(out.stdout).unwrap().split_whitespace().next().unwrap().to_string()
}

#[test]
fn pdq_and_dihedral_hashes_of_the_vector_directory_match_the_reference() {
    let dir = vectors_dir().join("images");
    let output = run(&["hash", "--dihedral", dir.to_str().unwrap()]);
    assert!(output.status.success(), "stderr: {}", String::from_utf8_lossy(&output.stderr));
    let expected = expected_pdq();
    let records = json_lines(&output);
    assert_eq!(records.len(), expected.len(), "one record per vector image");
    for record in &records {
        let name = file_name(record);
        let row = &expected[&name];
        let pdq = &record["pdq"];
        assert_eq!(pdq["hash"], row["hash"].as_str(), "{name}: hash");
        assert_eq!(pdq["quality"].as_u64().unwrap().to_string(), row["quality"], "{name}: quality");
        for column in ["rot90", "rot180", "rot270", "flipx", "flipy", "flipplus1", "flipminus1"] {
            assert_eq!(pdq["dihedral"][column], row[column].as_str(), "{name}: {column}");
        }
        assert_eq!(pdq["dihedral"]["original"], row["hash"].as_str(), "{name}: original");
        assert!(record.get("md5").is_none(), "{name}: digests were not asked for");
    }
    let names: Vec<String> = records.iter().map(file_name).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "files are reported in sorted order");
}

#[test]
fn digests_equal_the_coreutils_tools_for_files_and_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data.bin");
    // 5 MiB + 3 bytes of a simple pseudo-random sequence: crosses any internal chunk boundary.
    let mut bytes = vec![0; (5 << 20) + 3];
    hashsieve_testkit::Rng::new(1).fill(&mut bytes);
    std::fs::write(&path, &bytes).unwrap();

    let output = run(&["hash", "--digests", "md5,sha1,sha256", path.to_str().unwrap()]);
    assert!(output.status.success(), "stderr: {}", String::from_utf8_lossy(&output.stderr));
    let records = json_lines(&output);
    assert_eq!(records.len(), 1);
    let record = &records[0];
    assert_eq!(record["size"], bytes.len());
    assert_eq!(record["md5"], system_digest("md5sum", &path).as_str());
    assert_eq!(record["sha1"], system_digest("sha1sum", &path).as_str());
    assert_eq!(record["sha256"], system_digest("sha256sum", &path).as_str());
    assert!(record.get("blake3").is_none() && record.get("pdq").is_none());

    let mut child = hashsieve()
        .args(["hash", "--digests", "md5,sha1,sha256", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&bytes).unwrap();
    let from_stdin = child.wait_with_output().unwrap();
    assert!(from_stdin.status.success());
    let stdin_record = &json_lines(&from_stdin)[0];
    assert_eq!(stdin_record["path"], "-");
    for field in ["size", "md5", "sha1", "sha256"] {
        assert_eq!(stdin_record[field], record[field], "{field} from stdin");
    }
}

#[test]
fn unreadable_and_undecodable_files_are_reported_without_aborting_the_run() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(vectors_dir().join("images/misc-wee.png"), dir.path().join("a-wee.png")).unwrap();
    std::fs::write(dir.path().join("b-notes.txt"), b"not an image").unwrap();
    std::fs::write(
        dir.path().join("c-truncated.png"),
        &std::fs::read(dir.path().join("a-wee.png")).unwrap()[..200],
    )
    .unwrap();
    let missing = dir.path().join("d-missing.jpg");

    let output = run(&["hash", dir.path().to_str().unwrap(), missing.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2), "some inputs failed");
    let records = json_lines(&output);
    let by_name: HashMap<String, &Value> = records.iter().map(|r| (file_name(r), r)).collect();
    assert_eq!(by_name.len(), 4);

    let wee = by_name["a-wee.png"];
    assert_eq!(wee["pdq"]["hash"], expected_pdq()["misc-wee.png"]["hash"].as_str());
    assert!(wee.get("errors").is_none());

    for name in ["b-notes.txt", "c-truncated.png"] {
        let record = by_name[name];
        assert!(record["md5"].is_string(), "{name} still gets its digests");
        assert!(record.get("pdq").is_none(), "{name} has no PDQ");
        assert_eq!(record["errors"].as_array().unwrap().len(), 1, "{name}: one error");
    }
    let missing_record = by_name["d-missing.jpg"];
    assert!(missing_record["error"].as_str().unwrap().contains("No such file"), "{missing_record}");
}

#[test]
fn csv_output_carries_the_same_values_as_json() {
    let dir = vectors_dir().join("images");
    let args = ["hash", "--digests", "md5,blake3", "--dihedral", "--image-hash", "phash,dhash,ahash"];
    let json_out = run(&[&args[..], &[dir.to_str().unwrap()]].concat());
    let csv_out = run(&[&args[..], &["--csv", dir.to_str().unwrap()]].concat());
    assert!(json_out.status.success() && csv_out.status.success());

    let csv_text = String::from_utf8(csv_out.stdout).unwrap();
    let mut lines = csv_text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(header[..4], ["path", "size", "md5", "blake3"]);
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    let records = json_lines(&json_out);
    assert_eq!(rows.len(), records.len());
    let column = |name: &str| header.iter().position(|h| *h == name).unwrap();
    for (row, record) in rows.iter().zip(&records) {
        assert_eq!(row[column("path")], record["path"].as_str().unwrap());
        assert_eq!(row[column("md5")], record["md5"].as_str().unwrap());
        assert_eq!(row[column("pdq")], record["pdq"]["hash"].as_str().unwrap());
        assert_eq!(row[column("pdq_quality")], record["pdq"]["quality"].to_string());
        assert_eq!(row[column("pdq_flipminus1")], record["pdq"]["dihedral"]["flipminus1"].as_str().unwrap());
        for kind in ["phash", "dhash", "ahash"] {
            assert_eq!(row[column(kind)], record[kind].as_str().unwrap(), "{kind}");
            assert_eq!(row[column(kind)].len(), 16);
        }
        assert_eq!(row[column("errors")], "");
    }
}

#[test]
fn results_do_not_depend_on_the_number_of_threads() {
    let dir = vectors_dir().join("images");
    let one = run(&["hash", "--threads", "1", "--image-hash", "dhash", "--pdq", dir.to_str().unwrap()]);
    let two = run(&["hash", "--threads", "2", "--image-hash", "dhash", "--pdq", dir.to_str().unwrap()]);
    assert!(one.status.success() && two.status.success());
    assert_eq!(one.stdout, two.stdout);
}

#[test]
fn a_decoding_limit_turns_a_large_image_into_a_reported_error() {
    let image = vectors_dir().join("images/bridge-mods-square-512x512.png");
    let output = run(&["hash", "--pdq", "--max-pixels", "100000", image.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    let record = &json_lines(&output)[0];
    assert!(record.get("pdq").is_none());
    let error = record["errors"][0].as_str().unwrap();
    assert!(error.contains("512"), "the error names the dimensions: {error}");
}

#[test]
fn unknown_selections_are_usage_errors() {
    let output = run(&["hash", "--digests", "md4", "x"]);
    assert_eq!(output.status.code(), Some(3), "usage errors are fatal errors");
    assert!(String::from_utf8_lossy(&output.stderr).contains("unknown digest"));
}

#[test]
fn inputs_are_reported_in_the_order_they_are_named_with_stdin_in_its_place() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["b.bin", "a.bin"] {
        std::fs::write(dir.path().join(name), name).unwrap();
    }
    let (b, a) = (dir.path().join("b.bin"), dir.path().join("a.bin"));
    let mut child = hashsieve()
        .args(["hash", "--digests", "md5", b.to_str().unwrap(), "-", a.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"abc").unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    let records = json_lines(&output);
    let paths: Vec<&str> = records.iter().map(|r| r["path"].as_str().unwrap()).collect();
    assert_eq!(paths, [b.to_str().unwrap(), "-", a.to_str().unwrap()]);
    assert_eq!(records[1]["md5"], "900150983cd24fb0d6963f7d28e17f72");
}
