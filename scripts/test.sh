#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what it needs, then pytest (root tests included
# when run as root; under CI they must run, never skip).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
if [ "$(id -u)" -eq 0 ]; then
  export WIPE_AGENT_REQUIRE_ROOT=1
fi
exec .venv/bin/python -m pytest "$@"
