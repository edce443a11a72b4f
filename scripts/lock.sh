#!/usr/bin/env bash
# Regenerates the hashed lock files from pyproject.toml's ranges:
#   requirements.lock         the station: dependencies + the build backend (setuptools), every file's sha256
#   requirements-test.lock    the same plus the test tools ([test] extra)
# Run after changing a dependency range, or to take security releases; review the diff, run the suite,
# commit both files together. pip-tools runs from a throw-away venv, never the station's.
# The locks are resolved for the stations' platform (Debian 12, CPython 3.11, Linux): pip-compile drops
# other platforms' conditional dependencies (click's colorama on Windows, …), which is why the partners'
# any-OS requirements-verify.txt stays a list of ranges.
#   scripts/lock.sh            (about 2-3 minutes per file: every distribution of every pin is hashed)
set -euo pipefail
cd "$(dirname "$0")/.."
python=${WIPE_AGENT_PYTHON:-/usr/bin/python3}   # the stations' Python (Debian 12: 3.11): markers resolve for it
tools=$(mktemp -d)
trap 'rm -rf "$tools"' EXIT
"$python" -m venv "$tools/venv"
"$tools/venv/bin/python" -m pip install -q --disable-pip-version-check "pip-tools>=7.4,<8"
compile=("$tools/venv/bin/pip-compile" -q --generate-hashes --allow-unsafe --strip-extras --no-header
         --no-emit-index-url --no-emit-find-links)
"${compile[@]}" --build-deps-for wheel -o requirements.lock pyproject.toml
"${compile[@]}" --build-deps-for wheel --extra test -o requirements-test.lock pyproject.toml
rm -rf wipe_agent.egg-info
echo "lock.sh: wrote requirements.lock and requirements-test.lock"
