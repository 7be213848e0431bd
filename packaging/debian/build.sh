#!/usr/bin/env bash
# Builds the Debian package of hashsieve and hashsieved with cargo-deb (installed here when
# missing) and prints its path: target/debian/hashsieve_VERSION-1_ARCH.deb.
#
#   bash packaging/debian/build.sh
#
# The man pages and shell completions are made by the freshly built binaries from their clap
# definitions, so that the package's `man hashsieve` is the binary's `--help`.
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
command -v cargo-deb >/dev/null 2>&1 || cargo install --locked cargo-deb@3.8.0
# cargo-deb computes the package's library dependencies with dpkg-shlibdeps.
if ! command -v dpkg-shlibdeps >/dev/null 2>&1; then
  as_root apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends dpkg-dev
fi

cargo build --release --locked -p hashsieve-cli -p hashsieve-daemon
release=${CARGO_TARGET_DIR:-target}/release
assets=$release/assets
rm -rf "$assets"
mkdir -p "$assets/man" "$assets/completions" "$assets/lintian"
"$release/hashsieve" manpages "$assets/man" >/dev/null
"$release/hashsieved" --manpages "$assets/man" >/dev/null
# cargo-deb compresses the man pages it takes from the source tree, not those it takes from
# the target directory: Debian policy wants them compressed, reproducibly (no name, no time).
gzip -9n "$assets"/man/*
for shell in bash zsh fish; do
  case $shell in
    bash) name() { echo "$1"; } ;;
    zsh) name() { echo "_$1"; } ;;
    fish) name() { echo "$1.fish"; } ;;
  esac
  "$release/hashsieve" completions "$shell" >"$assets/completions/$(name hashsieve)"
  "$release/hashsieved" --completions "$shell" >"$assets/completions/$(name hashsieved)"
done
cp packaging/debian/lintian-overrides "$assets/lintian/hashsieve"

# The release profile keeps line tables for backtraces in development; the package is stripped.
cargo deb --no-build --locked --strip -p hashsieve-daemon
