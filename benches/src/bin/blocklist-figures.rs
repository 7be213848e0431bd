//! hashsieve's side of `benches/compare/blocklist.sh`: writes a synthetic URL block list in
//! every format into DIR, timing each writer, and prints one JSON line a format.
//!
//! ```text
//! blocklist-figures DIR [--entries 1000000]
//! ```
//!
//! The list: 1% whole hosts (`https://whole-N.example.net/`), 9% single `https` URLs and 90%
//! `http` URLs, twenty to a host, with a random hex segment in each path. Each writer runs three
//! times into memory (the median is reported), then once into its file in DIR: `urls.txt`,
//! `squid-urls.txt`, `squid-url-hosts.txt`, `squid-whole-hosts.txt`, `rpz.zone`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hashsieve_triage::blocklist::{self, BlockEntry, BlocklistError, Summary, plain, rpz, squid};
use serde_json::json;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().context("usage: blocklist-figures DIR [--entries N]")?);
    let mut count = 1_000_000;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--entries" => count = args.next().context("--entries N")?.parse()?,
            other => bail!("unknown argument {other}"),
        }
    }
    std::fs::create_dir_all(&dir)?;
    let entries = synthetic(count);

    let started = Instant::now();
    let etag = blocklist::etag(&entries);
    println!(
        "{}",
        json!({"format": "etag", "entries": count, "seconds": started.elapsed().as_secs_f64(), "etag": etag})
    );

    let zone = rpz::Zone { origin: "rpz.hashsieve.example.".into(), serial: 1 };
    type Writer<'a> = Box<dyn Fn(&[BlockEntry], &mut Vec<u8>) -> Result<Summary, BlocklistError> + 'a>;
    let writers: [(&str, &str, Writer); 5] = [
        ("plain", "urls.txt", Box::new(|e, out| plain::write_list(e, out))),
        ("squid url_regex", "squid-urls.txt", Box::new(|e, out| squid::write_url_regex(e, out))),
        ("squid url hosts", "squid-url-hosts.txt", Box::new(|e, out| squid::write_url_hosts(e, out))),
        ("squid whole hosts", "squid-whole-hosts.txt", Box::new(|e, out| squid::write_whole_hosts(e, out))),
        ("rpz", "rpz.zone", Box::new(|e, out| rpz::write_zone(e, &zone, out))),
    ];
    for (format, file, write) in writers {
        let mut times = Vec::new();
        let mut output = Vec::new();
        let mut summary = Summary::default();
        for _ in 0..3 {
            output.clear();
            let started = Instant::now();
            summary = write(&entries, &mut output)?;
            times.push(started.elapsed());
        }
        times.sort();
        std::fs::write(dir.join(file), &output)?;
        let median: Duration = times[1];
        println!(
            "{}",
            json!({
                "format": format, "file": file, "entries": count, "median_seconds": median.as_secs_f64(),
                "bytes": output.len(), "lines": output.iter().filter(|&&b| b == b'\n').count(),
                "written": summary.written, "skipped": summary.skipped,
            })
        );
    }
    Ok(())
}

/// The list described above, from a fixed seed.
fn synthetic(count: usize) -> Vec<BlockEntry> {
    let mut state = 0x5eed_u64;
    let mut next = move || {
        // splitmix64: reproducible data without a dependency.
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    (0..count)
        .map(|n| match n % 100 {
            0 => BlockEntry { url: format!("https://whole-{n}.example.net/"), whole_host: true },
            1..=9 => BlockEntry {
                url: format!("https://host-{}.example.net/g/{:08x}/{n}.jpg", n / 20, next() as u32),
                whole_host: false,
            },
            _ => BlockEntry {
                url: format!(
                    "http://host-{}.example.net/gallery/{:08x}/image-{n}.jpg",
                    n / 20,
                    next() as u32
                ),
                whole_host: false,
            },
        })
        .collect()
}
