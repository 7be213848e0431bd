"""FAISS's side of benches/compare/index.sh: the same data, searched by FAISS.

    python3 faiss_pdq.py DIR --threshold 31 --threads T [--methods flat,mih1,mih0]

Methods: flat = IndexBinaryFlat (exact); mih1 = IndexBinaryMultiHash(256, 16 tables, 16 bits)
with nflip=1, as Meta's HMA uses (complete at threshold 31); mih0 = the same with FAISS's default
nflip=0 (faster, incomplete). Prints one JSON line per method. FAISS's binary range_search
returns distances strictly below the radius (`dis < radius` in IndexBinaryHash_impl.h and
hamming_impl.h), so the radius passed is threshold + 1. Flat's results are written to
DIR/truth.txt (one line per query: the sorted haystack ids within the threshold of any of its
eight hashes) and are the reference for every recall figure.
"""
import argparse
import json
import os
import sys
import time

import faiss
import numpy as np


def rss_mib():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def per_query(lims, labels, queries):
    """Sorted unique haystack ids per query (eight consecutive hashes each)."""
    out = []
    for q in range(queries):
        ids = labels[lims[8 * q]:lims[8 * q + 8]]
        out.append(sorted(set(int(i) for i in ids)))
    return out


def make(method, haystack):
    if method == "flat":
        return faiss.IndexBinaryFlat(256)
    index = faiss.IndexBinaryMultiHash(256, 16, 16)
    index.nflip = 1 if method == "mih1" else 0
    return index


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("dir")
    parser.add_argument("--threshold", type=int, default=31)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--methods", default="flat,mih1,mih0")
    args = parser.parse_args()
    faiss.omp_set_num_threads(args.threads)

    haystack = np.fromfile(os.path.join(args.dir, "haystack.bin"), dtype=np.uint8).reshape(-1, 32)
    queries = np.fromfile(os.path.join(args.dir, "queries.bin"), dtype=np.uint8).reshape(-1, 32)
    n, q = len(haystack), len(queries) // 8
    radius = args.threshold + 1
    truth = None
    truth_path = os.path.join(args.dir, "truth.txt")

    for method in args.methods.split(","):
        print(f"faiss {method}: building", file=sys.stderr)
        started = time.perf_counter()
        index = make(method, haystack)
        index.add(haystack)
        build_s = time.perf_counter() - started

        path = os.path.join(args.dir, f"faiss-{method}.index")
        faiss.write_index_binary(index, path)
        file_bytes = os.path.getsize(path)
        del index
        before = rss_mib()
        started = time.perf_counter()
        index = faiss.read_index_binary(path)
        load_s = time.perf_counter() - started
        rss_after_load = rss_mib() - before
        os.remove(path)
        if method != "flat":
            index.nflip = 1 if method == "mih1" else 0

        latencies = []
        for k in range(min(q, 200)):
            started = time.perf_counter()
            index.range_search(queries[8 * k:8 * k + 8], radius)
            latencies.append((time.perf_counter() - started) * 1e3)
        latencies.sort()

        started = time.perf_counter()
        lims, _, labels = index.range_search(queries, radius)
        batch_s = time.perf_counter() - started
        results = per_query(lims, labels, q)
        del index

        if method == "flat":
            truth = results
            with open(truth_path, "w") as out:
                out.writelines(" ".join(map(str, ids)) + "\n" for ids in results)
        elif truth is None:
            with open(truth_path) as lines:
                truth = [[int(i) for i in line.split()] for line in lines]
        expected = sum(len(ids) for ids in truth)
        found = sum(len(set(ids) & set(t)) for ids, t in zip(results, truth))

        print(json.dumps({
            "tool": "faiss", "method": method, "n": n, "queries": q, "threads": args.threads,
            "build_s": build_s, "file_bytes": file_bytes, "bytes_per_entry": file_bytes / n,
            "load_s": load_s, "rss_after_load_mb": rss_after_load,
            "qps": q / batch_s, "hashes_per_s": 8 * q / batch_s,
            "p50_ms": latencies[len(latencies) // 2],
            "p99_ms": latencies[round((len(latencies) - 1) * 0.99)],
            "matches": sum(len(ids) for ids in results),
            "recall": found / expected if expected else 1.0,
        }), flush=True)


if __name__ == "__main__":
    main()
