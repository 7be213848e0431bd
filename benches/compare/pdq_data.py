"""Synthetic PDQ-like data for benches/compare/index.sh: the same bytes for every tool.

Usage:

    python3 pdq_data.py --n N --queries Q --seed S --out DIR

Writes, deterministically for a given seed:

- DIR/haystack.bin: N 256-bit hashes, 32 raw bytes each. 90% are uniform random; 10% are
  near-duplicates of one of those random entries (k distinct random bit flips, k uniform in
  0..=40). All N are shuffled so the near-duplicates sit at random positions.
- DIR/queries.bin: Q queries of 8 consecutive hashes each (a query image's 8 dihedral
  variants). Hash 0 of every even-numbered query is a perturbed copy of a random haystack entry
  (k distinct random bit flips, k uniform in 0..=40); every other hash is uniform random.
- DIR/meta.json: {"n": N, "queries": Q, "seed": S}.

Generation is vectorised with numpy, so N = 10,000,000 takes seconds.
"""
import argparse
import json
import os

import numpy as np

HASH_BYTES = 32
HASH_BITS = 8 * HASH_BYTES
VARIANTS = 8
MAX_FLIPS = 40
NEAR_FRACTION = 10  # one entry in NEAR_FRACTION is a near-duplicate
CHUNK = 100_000  # rows perturbed at once, to bound the temporary arrays


def uniform(rng, rows):
    """`rows` uniform random hashes, shape (rows, HASH_BYTES)."""
    data = np.frombuffer(rng.bytes(rows * HASH_BYTES), dtype=np.uint8)
    return data.reshape(rows, HASH_BYTES).copy()


def perturb(hashes, rng):
    """Copies of `hashes` with k distinct random bits flipped in each, k uniform in 0..=MAX_FLIPS.

    Every row draws a random key per bit; its MAX_FLIPS + 1 lowest-keyed bits, taken in key
    order, are a uniformly random ordered sample of distinct positions, and the first k of them
    are flipped.
    """
    out = np.empty_like(hashes)
    for start in range(0, len(hashes), CHUNK):
        rows = hashes[start:start + CHUNK]
        k = rng.integers(0, MAX_FLIPS + 1, size=len(rows))
        keys = rng.random((len(rows), HASH_BITS), dtype=np.float32)
        lowest = np.argpartition(keys, MAX_FLIPS, axis=1)[:, :MAX_FLIPS + 1]
        order = np.argsort(np.take_along_axis(keys, lowest, axis=1), axis=1)
        positions = np.take_along_axis(lowest, order, axis=1)
        chosen = np.arange(MAX_FLIPS + 1) < k[:, None]
        mask = np.zeros((len(rows), HASH_BITS), dtype=np.uint8)
        np.put_along_axis(mask, positions, chosen.astype(np.uint8), axis=1)
        out[start:start + CHUNK] = rows ^ np.packbits(mask, axis=1)
    return out


def haystack(rng, n):
    near = n // NEAR_FRACTION
    base = uniform(rng, n - near)
    sources = rng.integers(0, len(base), size=near)
    entries = np.concatenate([base, perturb(base[sources], rng)])
    return entries[rng.permutation(n)]


def queries(rng, q, entries):
    out = uniform(rng, q * VARIANTS).reshape(q, VARIANTS, HASH_BYTES)
    near = np.arange(0, q, 2)
    targets = rng.integers(0, len(entries), size=len(near))
    out[near, 0] = perturb(entries[targets], rng)
    return out


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, required=True, help="haystack entries")
    parser.add_argument("--queries", type=int, required=True, help="queries (8 hashes each)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", required=True, help="output directory")
    args = parser.parse_args()
    if args.n < 1 or args.queries < 1:
        parser.error("--n and --queries must be positive")

    rng = np.random.default_rng(args.seed)
    entries = haystack(rng, args.n)
    query_hashes = queries(rng, args.queries, entries)

    os.makedirs(args.out, exist_ok=True)
    entries.tofile(os.path.join(args.out, "haystack.bin"))
    query_hashes.tofile(os.path.join(args.out, "queries.bin"))
    with open(os.path.join(args.out, "meta.json"), "w") as meta:
        json.dump({"n": args.n, "queries": args.queries, "seed": args.seed}, meta)
        meta.write("\n")


if __name__ == "__main__":
    main()
