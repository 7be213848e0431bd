"""Synthetic PDQ-like data for benches/compare/index.sh, the same bytes for every tool.

    python3 pdq_data.py --n N --queries Q --seed S --out DIR

Writes DIR/haystack.bin (N x 32 bytes): uniform random 256-bit hashes, of which the last 10%
are near-duplicates of earlier ones (k distinct random bit flips, k uniform in 0..=40); and
DIR/queries.bin (Q x 8 x 32 bytes): each query is eight hashes standing for an image's eight
dihedral variants. Hash 0 of every even query is a perturbed copy of a haystack entry (k flips,
k uniform in 0..=40); everything else is uniform random.
"""
import argparse
import json
import os

import numpy as np


def flip(hashes, rng, max_flips):
    """Flips k distinct random bits of each row, k uniform in 0..=max_flips."""
    bits = np.unpackbits(hashes, axis=1)
    k = rng.integers(0, max_flips + 1, size=len(hashes))
    ranks = rng.random(bits.shape, dtype=np.float32).argsort(axis=1).argsort(axis=1)
    bits ^= (ranks < k[:, None]).astype(np.uint8)
    return np.packbits(bits, axis=1)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--queries", type=int, required=True)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)

    n, q = args.n, args.queries
    haystack = rng.integers(0, 256, size=(n, 32), dtype=np.uint8)
    near = n // 10
    sources = rng.integers(0, n - near, size=near)
    for start in range(0, near, 100_000):
        end = min(near, start + 100_000)
        haystack[n - near + start:n - near + end] = flip(haystack[sources[start:end]], rng, 40)

    queries = rng.integers(0, 256, size=(q, 8, 32), dtype=np.uint8)
    perturbed = np.arange(0, q, 2)
    queries[perturbed, 0] = flip(haystack[rng.integers(0, n, size=len(perturbed))], rng, 40)

    os.makedirs(args.out, exist_ok=True)
    haystack.tofile(os.path.join(args.out, "haystack.bin"))
    queries.tofile(os.path.join(args.out, "queries.bin"))
    with open(os.path.join(args.out, "meta.json"), "w") as meta:
        json.dump({"n": n, "queries": q, "seed": args.seed}, meta)


if __name__ == "__main__":
    main()
