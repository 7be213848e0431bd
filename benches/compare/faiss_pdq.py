"""FAISS's side of benches/compare/index.sh: PDQ range search over pdq_data.py's data.

Usage:

    python3 faiss_pdq.py DIR --threshold 31 --threads T [--methods flat,mih1,mih0]
    python3 faiss_pdq.py DIR --compare

Methods:

- flat: IndexBinaryFlat(256), brute force and exact. It runs first, writes DIR/truth.txt and is
  the reference for every recall figure (without it, DIR/truth.txt must exist).
- mih1: IndexBinaryMultiHash(256, 16 tables, 16 bits) with nflip=1, as Meta's HMA uses it.
  Complete at threshold 31: two hashes within 31 bits agree within 1 bit on one of the 16
  16-bit slices (31 // 16 = 1).
- mih0: the same with FAISS's default nflip=0; faster but incomplete.

For each method this measures building (construct + add), the size of the written index file,
loading it back with read_index_binary (the default, non-mmap load) and the resident memory that
load adds, throughput (all Q*8 hashes in one range_search call, with T OpenMP threads) and the
latency of single queries (one range_search call with a query's 8 hashes, over the first 200
queries). It prints one JSON object per method per line on stdout; logs go to stderr.

A query's matches are the haystack ids within the threshold of any of its 8 hashes. FAISS's
binary range_search returns distances strictly below the radius ("only distances < radius
(strict comparison) are returned", IndexBinary.h), so the radius passed is threshold + 1.

--compare reads DIR/faiss.jsonl, DIR/truth.txt and, when present, DIR/hashsieve.jsonl and
DIR/hashsieve-results.txt, and prints the side-by-side table and hashsieve's ratios.
"""
import argparse
import ctypes
import json
import os
import sys
import time

import faiss
import numpy as np

HASH_BYTES = 32
HASH_BITS = 8 * HASH_BYTES
VARIANTS = 8
NFLIP = {"mih1": 1, "mih0": 0}
METHODS = ("flat",) + tuple(NFLIP)
LATENCY_QUERIES = 200


def log(message):
    print(message, file=sys.stderr, flush=True)


def rss_mib():
    """This process's resident memory (VmRSS) in MiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def release_freed_memory():
    """Returns freed heap pages to the OS, so that the RSS growth of a load is the load's own
    and not hidden by reusing what the previous index left in the allocator."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def percentile(sorted_values, fraction):
    return sorted_values[round((len(sorted_values) - 1) * fraction)]


def new_index(method):
    if method == "flat":
        return faiss.IndexBinaryFlat(HASH_BITS)
    index = faiss.IndexBinaryMultiHash(HASH_BITS, 16, 16)
    index.nflip = NFLIP[method]
    return index


def read_ids(path):
    """One list of haystack ids per query, from a truth.txt-style file."""
    with open(path) as lines:
        return [[int(i) for i in line.split()] for line in lines]


def write_ids(path, per_query):
    with open(path, "w") as out:
        for ids in per_query:
            out.write(" ".join(map(str, ids)) + "\n")


def recall(found, truth):
    """Share of the truth's (query, id) pairs that `found` has."""
    expected = sum(len(ids) for ids in truth)
    hits = sum(len(set(f) & set(t)) for f, t in zip(found, truth))
    return hits / expected if expected else 1.0


def load_data(directory):
    with open(os.path.join(directory, "meta.json")) as file:
        meta = json.load(file)
    n, q = meta["n"], meta["queries"]
    haystack = np.fromfile(os.path.join(directory, "haystack.bin"), dtype=np.uint8)
    queries = np.fromfile(os.path.join(directory, "queries.bin"), dtype=np.uint8)
    if haystack.size != n * HASH_BYTES or queries.size != q * VARIANTS * HASH_BYTES:
        raise SystemExit(f"{directory}: data files do not match meta.json")
    return haystack.reshape(n, HASH_BYTES), queries.reshape(q * VARIANTS, HASH_BYTES)


def per_query(lims, distances, labels, threshold):
    """Sorted unique ids per query (VARIANTS consecutive hashes each) from a range_search."""
    if len(distances) and distances.max() > threshold:
        raise RuntimeError(f"range_search returned distance {distances.max()} > {threshold}")
    return [np.unique(labels[lims[start]:lims[start + VARIANTS]]).tolist()
            for start in range(0, len(lims) - 1, VARIANTS)]


def measure(method, haystack, queries, args, truth):
    """Builds, saves, reloads and searches one index; returns its JSON record and results."""
    n, q = len(haystack), len(queries) // VARIANTS
    radius = args.threshold + 1
    path = os.path.join(args.dir, f"faiss-{method}.index")

    log(f"faiss {method}: building over {n} entries")
    started = time.perf_counter()
    index = new_index(method)
    index.add(haystack)
    build_s = time.perf_counter() - started

    faiss.write_index_binary(index, path)
    file_bytes = os.path.getsize(path)
    del index
    release_freed_memory()

    log(f"faiss {method}: loading {file_bytes} bytes")
    before = rss_mib()
    started = time.perf_counter()
    index = faiss.read_index_binary(path)
    load_s = time.perf_counter() - started
    rss_after_load_mb = rss_mib() - before
    os.remove(path)
    if method in NFLIP and index.nflip != NFLIP[method]:
        raise RuntimeError(f"{method}: loaded index has nflip={index.nflip}")

    log(f"faiss {method}: searching {q} queries")
    started = time.perf_counter()
    found = index.range_search(queries, radius)
    batch_s = time.perf_counter() - started
    results = per_query(*found, args.threshold)

    latencies = []
    for k in range(min(q, LATENCY_QUERIES)):
        started = time.perf_counter()
        index.range_search(queries[k * VARIANTS:(k + 1) * VARIANTS], radius)
        latencies.append((time.perf_counter() - started) * 1e3)
    latencies.sort()
    del index
    release_freed_memory()

    record = {
        "tool": "faiss",
        "method": method,
        "n": n,
        "queries": q,
        "threads": args.threads,
        "build_s": build_s,
        "file_bytes": file_bytes,
        "bytes_per_entry": file_bytes / n,
        "load_s": load_s,
        "rss_after_load_mb": rss_after_load_mb,
        "qps": q / batch_s,
        "hashes_per_s": q * VARIANTS / batch_s,
        "p50_ms": percentile(latencies, 0.50),
        "p99_ms": percentile(latencies, 0.99),
        "matches": sum(len(ids) for ids in results),
        "recall": recall(results, truth if truth is not None else results),
    }
    return record, results


def run(args):
    methods = args.methods.split(",")
    unknown = set(methods) - set(METHODS)
    if unknown:
        raise SystemExit(f"unknown methods: {', '.join(sorted(unknown))}")
    if "flat" in methods:
        methods = ["flat"] + [m for m in methods if m != "flat"]

    faiss.omp_set_num_threads(args.threads)
    haystack, queries = load_data(args.dir)
    truth_path = os.path.join(args.dir, "truth.txt")
    truth = None if "flat" in methods else read_ids(truth_path)
    for method in methods:
        record, results = measure(method, haystack, queries, args, truth)
        if method == "flat":
            truth = results
            write_ids(truth_path, truth)
        print(json.dumps(record), flush=True)


def ratio(ours, theirs):
    if isinstance(ours, (int, float)) and isinstance(theirs, (int, float)) and theirs:
        return f"x{ours / theirs:.3g}"
    return "n/a"


def read_records(path):
    with open(path) as lines:
        return [json.loads(line) for line in lines if line.strip().startswith("{")]


def compare(directory):
    """Prints the side-by-side table and hashsieve's ratios to each FAISS method."""
    faiss_rows = read_records(os.path.join(directory, "faiss.jsonl"))
    ours_path = os.path.join(directory, "hashsieve.jsonl")
    results_path = os.path.join(directory, "hashsieve-results.txt")
    ours = read_records(ours_path) if os.path.exists(ours_path) else []
    notes = []
    if ours and os.path.exists(results_path):
        truth = read_ids(os.path.join(directory, "truth.txt"))
        found = read_ids(results_path)
        if len(found) != len(truth):
            notes.append(f"hashsieve-results.txt has {len(found)} lines for {len(truth)} queries")
        extra = sum(len(set(f) - set(t)) for f, t in zip(found, truth))
        for row in ours:
            row["recall"] = recall(found, truth)
        notes.append(f"hashsieve: recall {recall(found, truth):.4f} against FAISS Flat, "
                     f"{extra} ids beyond the threshold, identical results: {found == truth}")
    elif ours:
        notes.append("hashsieve-results.txt missing: hashsieve's recall is its own claim")
    else:
        notes.append("hashsieve: MISSING (no DIR/hashsieve.jsonl): FAISS results only")

    columns = [("build_s", "build s", ".2f"), ("bytes_per_entry", "B/entry", ".1f"),
               ("load_s", "load s", ".3g"), ("rss_after_load_mb", "load MiB", ".1f"),
               ("qps", "queries/s", ".1f"), ("p50_ms", "p50 ms", ".3f"),
               ("p99_ms", "p99 ms", ".3f"), ("recall", "recall", ".4f")]
    print(f"{'tool/method':<16}" + "".join(f"{title:>11}" for _, title, _ in columns))
    for row in faiss_rows + ours:
        cells = "".join(f"{row[key]:>11{fmt}}" if isinstance(row.get(key), (int, float))
                        else f"{'n/a':>11}" for key, _, fmt in columns)
        print(f"{row['tool'] + '/' + row['method']:<16}" + cells)
    for note in notes:
        print(note)
    if ours:
        print("\nhashsieve / faiss ratios (queries/s: above 1 = hashsieve faster; "
              "file size, load time, build time: below 1 = hashsieve smaller or faster)")
    for mine in ours:
        for theirs in faiss_rows:
            ratios = ", ".join(
                f"{label} {ratio(mine.get(key), theirs.get(key))}"
                for key, label in (("qps", "queries/s"), ("file_bytes", "file size"),
                                   ("load_s", "load time"), ("build_s", "build time")))
            print(f"hashsieve/{mine['method']} vs faiss/{theirs['method']}: {ratios}")


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dir", help="directory written by pdq_data.py")
    parser.add_argument("--threshold", type=int, default=31, help="max Hamming distance")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="OpenMP threads")
    parser.add_argument("--methods", default=",".join(METHODS),
                        help=f"comma-separated subset of {','.join(METHODS)}")
    parser.add_argument("--compare", action="store_true",
                        help="print the side-by-side table from DIR's results instead")
    args = parser.parse_args()
    if args.compare:
        compare(args.dir)
    else:
        run(args)


if __name__ == "__main__":
    main()
