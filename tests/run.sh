#!/usr/bin/env bash
# The test command: installs the peer programs the end-to-end tests drive, when they are
# missing, then runs `cargo test --workspace` (any arguments are passed on to it).
#
#   bash tests/run.sh                 # everything
#   bash tests/run.sh -p hashsieve-core
#
# The peers are real clients and servers, so that the daemon is tested against the programs
# it must work with rather than against our own idea of them:
#   Debian packages  curl, clamdscan, squid, c-icap (c-icap-client), redis-server,
#                    bind9-utils (named-checkzone, for the block list's DNS zone),
#                    chromium and chromium-driver (the review page, in a real browser)
#                    ffmpeg (ffmpeg and ffprobe: video decoding for vPDQ)
#   Python modules   prometheus_client (the OpenMetrics parser), openapi_spec_validator
# Debian packages come from apt-get (through sudo when not root). Python modules come from pip;
# where the system's Python refuses pip (PEP 668, as Debian's does), they go into a virtual
# environment under target/, put first on PATH for this run.
# Where a peer is installed already, plain `cargo test --workspace` works too; a test whose peer
# is missing fails, naming the package to install.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'tests/run.sh: %s\n' "$*" >&2; }
as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    say "need root (or sudo) to run: $*"
    exit 1
  fi
}
apt_install() {
  say "installing Debian packages: $*"
  as_root apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"
}

packages=()
command -v curl >/dev/null 2>&1 || packages+=(curl)
command -v clamdscan >/dev/null 2>&1 || packages+=(clamdscan)
[ -x /usr/sbin/squid ] || packages+=(squid)
command -v c-icap-client >/dev/null 2>&1 || packages+=(c-icap)
command -v redis-server >/dev/null 2>&1 || packages+=(redis-server)
command -v named-checkzone >/dev/null 2>&1 || packages+=(bind9-utils)
[ -x /usr/bin/chromium ] || packages+=(chromium)
command -v chromedriver >/dev/null 2>&1 || packages+=(chromium-driver)
command -v ffprobe >/dev/null 2>&1 || packages+=(ffmpeg)
command -v python3 >/dev/null 2>&1 || packages+=(python3 python3-venv)
if [ ${#packages[@]} -gt 0 ]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    say "missing ${packages[*]}, and this is not a Debian system: install them, then run cargo test --workspace"
    exit 1
  fi
  apt_install "${packages[@]}"
fi

modules=(prometheus_client openapi_spec_validator)
pips=(prometheus-client openapi-spec-validator)
importable() { local IFS=,; "$1" -c "import ${modules[*]}" 2>/dev/null; }
if ! importable python3; then
  say "installing Python modules: ${pips[*]}"
  if ! python3 -m pip install -q "${pips[@]}" 2>/dev/null || ! importable python3; then
    # The system's Python is managed by its package manager: a virtual environment of our own.
    venv=$PWD/target/test-python
    if ! importable "$venv/bin/python3"; then
      python3 -m venv "$venv" 2>/dev/null || { apt_install python3-venv && python3 -m venv --clear "$venv"; }
      "$venv/bin/python3" -m pip install -q "${pips[@]}"
    fi
    export PATH="$venv/bin:$PATH"
  fi
fi

exec cargo test --workspace "$@"
