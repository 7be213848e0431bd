//! hashsieve's side of `benches/compare/index.sh`: builds a PDQ index from the synthetic data
//! `pdq_data.py` wrote, opens it, runs the queries, and prints one JSON line with the same keys
//! as the FAISS side; writes the matches to `DIR/hashsieve-results.txt` for the recall check.
//!
//! `index-compare DIR [--threshold 31] [--threads N]`

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use hashsieve_core::hashes::HashKind;
use hashsieve_core::import::ImportedEntry;
use hashsieve_core::index::{Index, IndexBuilder, ListOptions, SearchOptions};
use rayon::prelude::*;

const HASH: usize = 32;
const VARIANTS: usize = 8;

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// The haystack ids within the threshold of any of the query's eight hashes, which are searched
/// in parallel when `parallel` (for the latency of one query on an idle machine) and one after
/// another otherwise (for throughput, where queries run in parallel).
fn query<B: AsRef<[u8]> + Sync>(
    index: &Index<B>,
    hashes: &[u8],
    options: &SearchOptions,
    ids_of: &HashMap<&[u8], Vec<u32>>,
    parallel: bool,
) -> Vec<u32> {
    let search = |hash: &[u8]| index.search(HashKind::Pdq, hash, options);
    let hits: Vec<_> = if parallel {
        hashes.par_chunks_exact(HASH).flat_map_iter(search).collect()
    } else {
        hashes.chunks_exact(HASH).flat_map(search).collect()
    };
    let mut ids: Vec<u32> = hits
        .into_iter()
        .flat_map(|hit| ids_of[index.value(&hit).expect("hit in range")].iter().copied())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = PathBuf::from(args.first().ok_or("usage: index-compare DIR [--threshold T] [--threads N]")?);
    let flag = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1));
    let threshold: u32 = flag("--threshold").map(|v| v.parse()).transpose()?.unwrap_or(31);
    let threads: usize =
        flag("--threads").map(|v| v.parse()).transpose()?.unwrap_or_else(rayon::current_num_threads);
    rayon::ThreadPoolBuilder::new().num_threads(threads).build_global()?;

    let haystack = std::fs::read(dir.join("haystack.bin"))?;
    let queries = std::fs::read(dir.join("queries.bin"))?;
    let (n, q) = (haystack.len() / HASH, queries.len() / (HASH * VARIANTS));

    let started = Instant::now();
    let mut builder = IndexBuilder::new();
    let mut options = ListOptions::new("synthetic");
    options.pdq_threshold = threshold;
    let list = builder.add_list(options)?;
    for hash in haystack.chunks_exact(HASH) {
        builder.add(list, &ImportedEntry::new(HashKind::Pdq, hash.to_vec()))?;
    }
    let path = dir.join("hashsieve.hsidx");
    builder.write_to_path(&path)?;
    drop(builder);
    let build_s = started.elapsed().as_secs_f64();
    let file_bytes = std::fs::metadata(&path)?.len();

    let before = rss_kib();
    let started = Instant::now();
    let index = Index::open_path(&path)?;
    let load_s = started.elapsed().as_secs_f64();
    let rss_after_load_mb = (rss_kib().saturating_sub(before)) as f64 / 1024.0;

    // Identical hashes are one entry in the index; the benchmark reports haystack ids.
    let mut ids_of: HashMap<&[u8], Vec<u32>> = HashMap::with_capacity(n);
    for (id, hash) in haystack.chunks_exact(HASH).enumerate() {
        ids_of.entry(hash).or_default().push(id as u32);
    }
    let search = SearchOptions::default();
    let per_query: Vec<&[u8]> = queries.chunks_exact(HASH * VARIANTS).collect();

    // Latency of single queries, one after another: first on a freshly opened index (every
    // page of the mapping faulted in on first touch), then again once it is warm.
    let latencies = |parallel| {
        let mut ms: Vec<f64> = per_query
            .iter()
            .take(q.min(200))
            .map(|hashes| {
                let started = Instant::now();
                std::hint::black_box(query(&index, hashes, &search, &ids_of, parallel));
                started.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        ms.sort_by(f64::total_cmp);
        ms
    };
    let cold = latencies(true);

    let started = Instant::now();
    let results: Vec<Vec<u32>> =
        per_query.par_iter().map(|hashes| query(&index, hashes, &search, &ids_of, false)).collect();
    let batch_s = started.elapsed().as_secs_f64();
    let warm = latencies(true);

    write_results(&dir.join("hashsieve-results.txt"), &results)?;
    let json = serde_json::json!({
        "tool": "hashsieve", "method": "mih", "n": n, "queries": q, "threads": threads,
        "build_s": build_s, "file_bytes": file_bytes, "bytes_per_entry": file_bytes as f64 / n as f64,
        "load_s": load_s, "rss_after_load_mb": rss_after_load_mb,
        "qps": q as f64 / batch_s, "hashes_per_s": (q * VARIANTS) as f64 / batch_s,
        "p50_ms": percentile(&warm, 0.5), "p99_ms": percentile(&warm, 0.99),
        "cold_p50_ms": percentile(&cold, 0.5), "cold_p99_ms": percentile(&cold, 0.99),
        "matches": results.iter().map(Vec::len).sum::<usize>(),
        "layout": index.hamming_layout(HashKind::Pdq),
    });
    println!("{json}");
    std::fs::remove_file(&path)?;
    Ok(())
}

fn write_results(path: &Path, results: &[Vec<u32>]) -> std::io::Result<()> {
    let text: String = results
        .iter()
        .map(|ids| ids.iter().map(u32::to_string).collect::<Vec<_>>().join(" ") + "\n")
        .collect();
    std::fs::write(path, text)
}
