#!/usr/bin/env bash
# Installs everything wipe-agent needs on Debian 12 (as root): system packages, a virtualenv in
# .venv with the project and exactly the dependencies of the hashed lock file. Idempotent.
#   scripts/setup.sh          the station (what `wipe-agent demo` needs): requirements.lock, then the
#                             project itself as a regular (non-editable) install: the station runs the
#                             copy in .venv, not whatever the checkout holds later
#   scripts/setup.sh --test   plus the test tools (pytest, hypothesis, fio, poppler's pdfsig, PostgreSQL …)
#                             from requirements-test.lock, and an editable install: tests run the checkout
#   scripts/setup.sh --fleet  the station plus Debian's PostgreSQL server (a fleet host; `demo --fleet`)
# Every downloaded file must match a sha256 in the lock (pip --require-hashes); scripts/lock.sh regenerates
# the locks from pyproject.toml's ranges.
set -euo pipefail
cd "$(dirname "$0")/.."
want_tests=0
want_fleet=0
[ "${1:-}" = "--test" ] && want_tests=1
[ "${1:-}" = "--fleet" ] && want_fleet=1

if [ "$(id -u)" -ne 0 ]; then
  echo "setup.sh: run as root (it installs Debian packages and needs loop devices): sudo $0 $*" >&2
  exit 2
fi

packages=(python3 python3-venv python3-pip libudev1 util-linux e2fsprogs fdisk diffutils
          fonts-dejavu-core ca-certificates smartmontools)
if [ "$want_tests" -eq 1 ]; then
  # systemd only for systemd-analyze (the unit's exposure score); gcc builds the guard tests' thread-holder helper
  # faketime: the verifier's "+7 years" CLI test runs the real CLI under a shifted clock
  # postgresql: a real server for the store tests (started per test session as the postgres user, socket only)
  # chromium + chromium-driver: the web console's browser tests (headless, driven by Selenium, never downloaded)
  packages+=(fio poppler-utils libnss3-tools kmod procps systemd gcc libc6-dev faketime postgresql
             chromium chromium-driver)
fi
if [ "$want_fleet" -eq 1 ]; then
  packages+=(postgresql)
fi
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Debian's python3 (≥ 3.11); a venv keeps the station's Python packages apart from the system's
python=${WIPE_AGENT_PYTHON:-/usr/bin/python3}
[ -x "$python" ] || python=python3
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
# pip's and the build backend's chatter goes to a log, shown only if the install fails
log=$(mktemp)
lock=requirements.lock
project=(--force-reinstall .)  # a rerun after a pull installs the new code (same version number)
if [ "$want_tests" -eq 1 ]; then
  lock=requirements-test.lock
  project=(-e .)
fi
# the lock holds the build backend too, so the project is built without fetching anything unhashed
# (--no-build-isolation); --no-deps: nothing beyond the lock is resolved or downloaded
pip=(.venv/bin/python -m pip install -q --disable-pip-version-check)
if ! { "${pip[@]}" --require-hashes --no-deps -r "$lock" &&
       "${pip[@]}" --no-deps --no-build-isolation "${project[@]}"; } >"$log" 2>&1; then
  cat "$log" >&2
  rm -f "$log"
  echo "setup.sh: pip install failed (see above)" >&2
  exit 1
fi
rm -f "$log"
echo "setup.sh: ready: $(.venv/bin/wipe-agent --version)"
