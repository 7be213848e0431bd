//! Times hashsieve's one-pass digests of a file, for `benches/compare/digests.sh`.
//!
//! `digest-time FILE DIGESTS REPEATS` reads FILE from the start each repeat and prints
//! `median_seconds` and the digests in hex.

use std::time::Instant;

use hashsieve_core::digest::{DigestSet, digest_file};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 {
        eprintln!("usage: digest-time FILE DIGESTS REPEATS");
        std::process::exit(2);
    }
    let which: DigestSet = args[2].parse().unwrap_or_else(|e| panic!("{e}"));
    let repeats: usize = args[3].parse().expect("REPEATS is a number");
    let mut samples = Vec::with_capacity(repeats);
    let mut last = None;
    for _ in 0..repeats {
        let start = Instant::now();
        let (digests, _) = digest_file(args[1].as_ref(), which).expect("readable file");
        samples.push(start.elapsed().as_secs_f64());
        last = Some(digests);
    }
    samples.sort_by(f64::total_cmp);
    let digests = last.expect("at least one repeat");
    let hex: Vec<String> =
        digests.iter().map(|(kind, value)| format!("{kind}={}", hex::encode(value))).collect();
    println!("{:.6} {}", samples[samples.len() / 2], hex.join(" "));
}
