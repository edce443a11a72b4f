#!/usr/bin/env bash
# Installs wipe-agent and runs its demo: four throw-away loop drives sanitised end to end.
set -euo pipefail
cd "$(dirname "$0")/.."
# `scripts/demo.sh --fleet`: two demo stations into a local fleet on PostgreSQL (installs postgresql too)
case " $* " in *" --fleet "*) bash scripts/setup.sh --fleet ;; *) bash scripts/setup.sh ;; esac
exec .venv/bin/wipe-agent demo "$@"
