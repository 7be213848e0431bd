//! The review page's figures (issue #22): how long the release `hashsieved` takes to render the
//! queue and a group page with many groups pending.
//!
//! It builds a triage store of `--groups` pending review groups (each of 1 to 5 near-duplicate
//! items: synthetic PDQ hashes, a few bits apart within a group and random between groups,
//! digests of distinct bytes), starts the daemon on it with the review page enabled, signs in
//! as an analyst, and times `--calls` requests of each page, one connection each:
//! `GET /review/` (oldest first), `GET /review/?order=largest`, `GET /review/?order=priority`
//! (one report in 97 comes from the priority source `police`) and `GET /review/groups/{g}` for
//! random groups. It prints the median and p99 of each.
//!
//!   review-page-figures --daemon target/release/hashsieved [--groups 10000] [--calls 400]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hashsieve_core::digest::{DigestSet, digest_bytes};
use hashsieve_core::index::IndexBuilder;
use hashsieve_core::matcher::Matcher;
use hashsieve_core::pdq::PdqHash;
use hashsieve_core::signals::{PdqSignal, Signals};
use hashsieve_testkit::Rng;
use hashsieve_triage::model::Report;
use hashsieve_triage::{Triage, TriageOptions};

const ANALYST: &str = "analyst-token-for-the-review-page-figures";

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (mut daemon, mut groups, mut calls) = (None, 10_000usize, 400usize);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--daemon" => daemon = Some(PathBuf::from(value()?)),
            "--groups" => groups = value()?.parse()?,
            "--calls" => calls = value()?.parse()?,
            other => bail!("unknown argument {other}"),
        }
    }
    let daemon = daemon.context("--daemon PATH (the release hashsieved)")?;
    let work = tempfile::tempdir()?;

    let started = Instant::now();
    let items = fill_store(&work.path().join("triage.redb"), groups)?;
    eprintln!(
        "a store of {groups} pending groups, {items} items, in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let index = work.path().join("empty.hsx");
    std::fs::write(&index, IndexBuilder::new().to_vec())?;
    let config = work.path().join("hashsieved.toml");
    let digest = hex::encode(digest_bytes(ANALYST.as_bytes(), DigestSet::ALL).sha256.context("a SHA-256")?);
    std::fs::write(
        &config,
        format!(
            "index = {index:?}\n[http]\nlisten = \"127.0.0.1:0\"\n[triage]\nstore = {:?}\n\
             [review_ui]\nenabled = true\npriority_sources = [\"police\"]\n[limits]\nrequest_timeout_secs = 60\n\
             [[tokens]]\nid = \"analyst\"\nsha256 = \"{digest}\"\nroles = [\"review\"]\n",
            work.path().join("triage.redb")
        ),
    )?;
    let mut child = Command::new(&daemon)
        .args(["--config", config.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", daemon.display()))?;
    let line =
        BufReader::new(child.stdout.take().unwrap()).lines().next().context("the daemon stopped")??;
    let address: SocketAddr =
        line.strip_prefix("listening on http://").context("a listening line")?.parse()?;

    let result = measure(address, groups, calls);
    let _ = child.kill();
    let _ = child.wait();
    result
}

/// Fills a new store with `groups` pending groups of 1 to 5 items; the number of items.
fn fill_store(path: &std::path::Path, groups: usize) -> anyhow::Result<usize> {
    let mut triage = Triage::open(path, TriageOptions::default())?;
    let lists = Matcher::from_bytes(IndexBuilder::new().to_vec())?;
    let mut rng = Rng::new(22);
    let mut batch = Vec::new();
    let mut items = 0;
    for group in 0..groups {
        let base: [u8; 32] = rng.bytes();
        for member in 0..1 + group % 5 {
            let mut hash = base;
            for _ in 0..member * 2 {
                let bit = rng.below(256) as usize;
                hash[bit / 8] ^= 1 << (bit % 8);
            }
            let bytes = format!("synthetic content {group} {member}").into_bytes();
            let signals = Signals {
                size: bytes.len() as u64,
                digests: digest_bytes(&bytes, DigestSet::ALL),
                pdq: Some(PdqSignal { hash: PdqHash(hash), quality: 100, dihedral: None }),
                ..Signals::default()
            };
            let report = Report {
                id: format!("r-{group}-{member}"),
                source: match (group * 5 + member) % 97 {
                    0 => "police".to_string(),
                    site => format!("https://site-{site}.example/{group}/{member}.jpg"),
                },
                reported_ms: 1_790_000_000_000 + (group * 10 + member) as u64,
                location: None,
            };
            batch.push((report, signals));
            items += 1;
        }
        if batch.len() >= 1000 || group + 1 == groups {
            for outcome in triage.submit_all(&batch, &lists)? {
                outcome?;
            }
            batch.clear();
        }
    }
    let pending = triage.counts()?.pending_groups;
    if pending != groups as u64 {
        bail!("{pending} groups pending, not {groups}: the synthetic hashes grouped wrongly");
    }
    Ok(items)
}

fn measure(address: SocketAddr, groups: usize, calls: usize) -> anyhow::Result<()> {
    let form = format!("token={ANALYST}");
    let (status, head, _) = call(address, "POST", "/review/sign-in", None, form.as_bytes())?;
    let cookie = head
        .lines()
        .find_map(|line| line.strip_prefix("set-cookie: ").or_else(|| line.strip_prefix("Set-Cookie: ")))
        .and_then(|value| value.split(';').next())
        .with_context(|| format!("signing in: {status}, no cookie"))?
        .to_string();
    let mut rng = Rng::new(7);
    let random_groups: Vec<String> =
        (0..calls).map(|_| format!("/review/groups/{}", 1 + rng.below(groups as u64))).collect();
    let pages = [
        ("queue, oldest first", vec!["/review/".to_string(); calls]),
        ("queue, largest first", vec!["/review/?order=largest".to_string(); calls]),
        ("queue, priority first", vec!["/review/?order=priority".to_string(); calls]),
        ("a group page", random_groups),
    ];
    println!("review page, {groups} pending groups, {calls} calls each (one connection each):");
    for (name, paths) in pages {
        let mut millis = Vec::with_capacity(calls);
        for path in paths {
            let started = Instant::now();
            let (status, _, body) = call(address, "GET", &path, Some(&cookie), b"")?;
            millis.push(started.elapsed().as_secs_f64() * 1000.0);
            if status != 200 || body.len() < 500 {
                bail!("GET {path}: {status}, {} bytes", body.len());
            }
        }
        millis.sort_by(f64::total_cmp);
        let at = |q: f64| millis[((millis.len() - 1) as f64 * q).round() as usize];
        println!("  {name:22} median {:7.2} ms   p99 {:7.2} ms", at(0.5), at(0.99));
    }
    Ok(())
}

/// One request on its own connection: the status, the head and the body.
fn call(
    address: SocketAddr,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    body: &[u8],
) -> anyhow::Result<(u16, String, Vec<u8>)> {
    let mut stream = TcpStream::connect(address)?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let cookie = cookie.map(|cookie| format!("Cookie: {cookie}\r\n")).unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n{cookie}\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let split = raw.windows(4).position(|window| window == b"\r\n\r\n").context("a response head")?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = head.split_whitespace().nth(1).and_then(|status| status.parse().ok()).context("a status")?;
    Ok((status, head, raw[split + 4..].to_vec()))
}
