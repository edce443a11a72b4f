#!/usr/bin/env bash
# Installs wipe-agent and runs its demo: four throw-away loop drives sanitised end to end.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/wipe-agent demo "$@"
