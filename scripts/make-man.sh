#!/usr/bin/env bash
# Regenerates man/*.1 from the command line's own help (agent/cli/manpages.py): run after changing a
# command, an option or its help. Read one with: man -l man/wipe-agent-wipe.1
set -euo pipefail
cd "$(dirname "$0")/.."
python=.venv/bin/python
[ -x "$python" ] || python=python3
exec "$python" -W error -m agent.cli.manpages "${1:-man}"
