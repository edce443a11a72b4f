#!/usr/bin/env bash
# Regenerates the hashed lock files from pyproject.toml's ranges (and requirements-verify.txt's):
#   requirements.lock         the station: dependencies + the build backend (setuptools), every file's sha256
#   requirements-test.lock    the same plus the test tools ([test] extra)
#   requirements-verify.lock  the partners' verifier venv
# Run after changing a dependency range, or to take security releases; review the diff, run the suite,
# commit the three files together. pip-tools runs from a throw-away venv, never the station's.
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
"${compile[@]}" -o requirements-verify.lock requirements-verify.txt
rm -rf wipe_agent.egg-info
echo "lock.sh: wrote requirements.lock, requirements-test.lock, requirements-verify.lock"
