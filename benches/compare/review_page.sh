#!/usr/bin/env bash
# The review page's figures (issue #22): the release hashsieved rendering the queue (oldest and
# largest first) and a group page with 10,000 groups (30,000 items) pending; median and p99 of
# 400 calls each. See benches/src/bin/review-page-figures.rs. The preview's render time is
# criterion's: cargo bench -p hashsieve-benches --bench preview.
#
#   bash benches/compare/review_page.sh [GROUPS] [CALLS]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
cargo build --release --quiet -p hashsieve-daemon --bin hashsieved -p hashsieve-benches --bin review-page-figures
target/release/review-page-figures --daemon target/release/hashsieved --groups "${1:-10000}" --calls "${2:-400}"
