//! The daemon's invariants, end to end: every decision on every protocol writes exactly one
//! audit line, with who asked and what was decided, bounded in size; and no content — not a
//! window of any picture sent — is in any file the daemon wrote or touched: its log, its index
//! directory, its triage store, the temporary directory it was given, and the append-only file
//! of the Redis its queue ingest uses (reports there are URLs, which the daemon fetches).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hashsieve_core::hashes::HashKind;
use hashsieve_core::import::ImportedEntry;
use hashsieve_core::index::dir::IndexDir;
use hashsieve_core::index::{IndexBuilder, ListOptions};
use serde_json::Value;

mod daemon_support;
use daemon_support::{Hashsieved, RedisServer, SAMPLE_IMAGES, md5sum, origin, request, sample, sha256_hex};

const MATCH_TOKEN: &str = "match-token-for-invariants";
const REPORT_TOKEN: &str = "report-token-for-invariants";

fn exchange(address: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    stream.write_all(bytes).unwrap();
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply);
    reply
}

fn instream(content: &[u8]) -> Vec<u8> {
    let mut bytes = b"zINSTREAM\0".to_vec();
    bytes.extend((content.len() as u32).to_be_bytes());
    bytes.extend(content);
    bytes.extend([0; 4]);
    bytes
}

/// A RESPMOD of `body` as an image, whole, closing the connection after.
fn respmod(body: &[u8]) -> Vec<u8> {
    let request = "GET http://origin.test/picture HTTP/1.1\r\nHost: origin.test\r\n\r\n";
    let response =
        format!("HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n", body.len());
    let mut out = format!(
        "RESPMOD icap://127.0.0.1/respmod ICAP/1.0\r\nHost: 127.0.0.1\r\nAllow: 204\r\nConnection: close\r\n\
         Encapsulated: req-hdr=0, res-hdr={}, res-body={}\r\n\r\n{request}{response}",
        request.len(),
        request.len() + response.len()
    )
    .into_bytes();
    out.extend(format!("{:x}\r\n", body.len()).as_bytes());
    out.extend(body);
    out.extend(b"\r\n0\r\n\r\n");
    out
}

/// Every file under `dir`, with its bytes.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files(&path));
        } else if let Ok(bytes) = std::fs::read(&path) {
            found.push((path.display().to_string(), bytes));
        }
    }
    found
}

#[test]
fn every_decision_is_audited_once_and_no_content_reaches_a_file() {
    let temp = tempfile::tempdir().unwrap();
    let index = temp.path().join("index");
    let mut builder = IndexBuilder::new();
    let hot = builder.add_list(ListOptions::new("hot")).unwrap();
    let md5 = hex::decode(md5sum(&sample("wee.jpg"))).unwrap();
    builder.add(hot, &ImportedEntry::new(HashKind::Md5, md5)).unwrap();
    let pictures = builder.add_list(ListOptions::new("pictures")).unwrap();
    builder.add(pictures, &ImportedEntry::new(HashKind::Pdq, vec![0x5a; 32])).unwrap();
    IndexDir::create(&index, &builder).unwrap();
    let scratch = temp.path().join("tmp");
    std::fs::create_dir(&scratch).unwrap();
    let redis_dir = temp.path().join("redis");
    std::fs::create_dir(&redis_dir).unwrap();
    let redis_server = RedisServer::start_persistent(&redis_dir);
    let config = temp.path().join("hashsieved.toml");
    std::fs::write(
        &config,
        format!(
            "index = {index:?}\nwritable = true\n[http]\nlisten = \"127.0.0.1:0\"\n\
             [clamd]\ntcp_listen = \"127.0.0.1:0\"\n[icap]\nlisten = \"127.0.0.1:0\"\n\
             [triage]\nstore = {:?}\nexport_list = \"hotline\"\n[logging]\njson = true\n\
             [ingest]\nredis_url = \"{}\"\nconsumer = \"invariants\"\nblock_ms = 100\n\
             [fetch]\nallow_networks = [\"127.0.0.1/32\"]\ntotal_timeout_ms = 5000\n\
             [[tokens]]\nid = \"proxy\"\nsha256 = \"{}\"\nroles = [\"match\"]\n\
             [[tokens]]\nid = \"form\"\nsha256 = \"{}\"\nroles = [\"report\"]\n",
            temp.path().join("triage.redb"),
            redis_server.url,
            sha256_hex(MATCH_TOKEN),
            sha256_hex(REPORT_TOKEN),
        ),
    )
    .unwrap();
    let log = temp.path().join("hashsieved.log");
    let mut command = Command::new(env!("CARGO_BIN_EXE_hashsieved"));
    command.env("TMPDIR", &scratch).stderr(Stdio::from(std::fs::File::create(&log).unwrap()));
    let mut daemon = Hashsieved::start_with(&mut command, &config, 3);
    let address = |prefix| daemon.announced(prefix).unwrap().parse::<SocketAddr>().unwrap();
    let (http, clamd, icap) = (address("http://"), address("clamd tcp://"), address("icap://"));

    let images: Vec<(String, Vec<u8>)> = SAMPLE_IMAGES
        .iter()
        .map(|name| (md5sum(&sample(name)), std::fs::read(sample(name)).unwrap()))
        .collect();
    for (i, (_, image)) in images.iter().enumerate() {
        assert_eq!(request(http, "POST", "/v1/match/content", Some(MATCH_TOKEN), image).status, 200);
        assert!(String::from_utf8_lossy(&exchange(clamd, &instream(image))).starts_with("stream: "));
        assert!(String::from_utf8_lossy(&exchange(icap, &respmod(image))).starts_with("ICAP/1.0 "));
        let path = format!("/v1/reports/content?id=report-{i}&source=test");
        assert_eq!(request(http, "POST", &path, Some(REPORT_TOKEN), image).status, 200);
    }
    // The same pictures reported through the queue, as URLs of origins serving them.
    let mut redis = redis::Client::open(redis_server.url.as_str()).unwrap().get_connection().unwrap();
    for (i, (_, image)) in images.iter().enumerate() {
        let url = format!("http://{}/reported-{i}.jpg", origin(image.clone()));
        let _: String = redis::cmd("XADD")
            .arg("hashsieve:reports")
            .arg("*")
            .arg("report_id")
            .arg(format!("queued-{i}"))
            .arg("url")
            .arg(url)
            .arg("source")
            .arg("queue")
            .query(&mut redis)
            .unwrap();
    }
    let started = Instant::now();
    loop {
        let decided: usize = redis::cmd("XLEN").arg("hashsieve:results").query(&mut redis).unwrap();
        if decided == images.len() {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{decided} of the queued reports decided");
        std::thread::sleep(Duration::from_millis(50));
    }
    let lookups: Vec<Value> =
        images.iter().map(|(md5, _)| serde_json::json!({"kind": "md5", "value": md5})).collect();
    let lookups = serde_json::json!({ "hashes": lookups }).to_string();
    assert_eq!(request(http, "POST", "/v1/match/hashes", Some(MATCH_TOKEN), lookups.as_bytes()).status, 200);
    daemon.terminate();
    assert!(daemon.child.wait().unwrap().success());
    // Every command Redis took is in its append-only file, written before it answered.
    drop(redis_server);

    // The audit trail: a line per decision, each naming who asked and what was decided.
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<Value> =
        text.lines().map(|line| serde_json::from_str(line).expect("JSON log lines")).collect();
    let audit: Vec<&Value> = lines.iter().filter(|line| line["target"] == "audit").collect();
    for protocol in ["http", "clamd", "icap", "ingest"] {
        let decisions: Vec<&Value> = audit
            .iter()
            .map(|line| &line["fields"])
            .filter(|fields| fields["message"] == "decision" && fields["protocol"] == protocol)
            .collect();
        assert_eq!(decisions.len(), images.len(), "{protocol}: one line per picture");
        let mut md5s: Vec<&str> = decisions.iter().map(|fields| fields["md5"].as_str().unwrap()).collect();
        let mut expected: Vec<&str> = images.iter().map(|(md5, _)| md5.as_str()).collect();
        md5s.sort_unstable();
        expected.sort_unstable();
        assert_eq!(md5s, expected, "{protocol}: the hashes of what was decided");
        for fields in &decisions {
            let client = fields["client"].as_str().unwrap_or_default();
            if protocol == "ingest" {
                // The stream entry the report came in, and the report.
                assert!(client.split_once('-').is_some_and(|(ms, _)| ms.parse::<u64>().is_ok()), "{fields}");
                assert!(fields["report"].as_str().unwrap().starts_with("queued-"), "{fields}");
                assert!(fields["url"].as_str().unwrap().contains("/reported-"), "{fields}");
            } else {
                assert!(client.starts_with("127.0.0.1:"), "{fields}");
                assert_eq!(fields["report"], "-", "{fields}");
            }
            let token = if protocol == "http" { "proxy" } else { "-" };
            assert_eq!(fields["token"], token, "{fields}");
            assert!(
                fields["outcome"].is_string() && fields["matches"].is_string() && fields["pdq"].is_string()
            );
        }
        let known = decisions.iter().filter(|fields| fields["outcome"] == "Known").count();
        assert_eq!(known, 1, "{protocol}: wee.jpg, listed");
        assert!(decisions.iter().any(|fields| fields["matches"].as_str().unwrap().contains("hot:-:0")));
    }
    let lookup_lines: Vec<&Value> =
        audit.iter().filter(|line| line["fields"]["message"] == "decisions").copied().collect();
    assert_eq!(lookup_lines.len(), 1, "one line for a request of lookups");
    assert_eq!(lookup_lines[0]["fields"]["lookups"], images.len());
    let reports: Vec<&Value> =
        audit.iter().map(|line| &line["fields"]).filter(|fields| fields["message"] == "report").collect();
    let queued = reports.iter().filter(|fields| fields["protocol"] == "ingest").count();
    assert_eq!((reports.len(), queued), (2 * images.len(), images.len()), "one line per report, each way");
    let longest = text.lines().map(str::len).max().unwrap();
    assert!(longest < 16 << 10, "an audit line is bounded: {longest} bytes");

    // No content anywhere: windows of every picture, searched in every file.
    let written = files(temp.path());
    assert!(written.iter().any(|(path, _)| path.ends_with("triage.redb")));
    let appended: usize =
        written.iter().filter(|(path, _)| path.contains("/redis/")).map(|(_, bytes)| bytes.len()).sum();
    assert!(appended > 1000, "Redis kept its append-only file: {appended} bytes");
    for (md5, image) in &images {
        // Windows of varied bytes: a run of zeros or a common header is no picture's own.
        let varied = |window: &[u8]| window.iter().collect::<std::collections::BTreeSet<_>>().len() >= 32;
        let windows: Vec<usize> =
            (0..image.len().saturating_sub(48)).filter(|&start| varied(&image[start..start + 48])).collect();
        assert!(windows.len() > 16, "{md5}: enough varied bytes to look for");
        for start in windows.iter().copied().step_by(windows.len() / 16) {
            let window = &image[start..start + 48];
            for (path, bytes) in &written {
                assert!(
                    !bytes.windows(window.len()).any(|candidate| candidate == window),
                    "{path} holds bytes {start}..{} of the picture {md5}",
                    start + 48
                );
            }
        }
    }
}
