#!/usr/bin/env bash
# CLI start time against a bare `python -c 'import click'` from the same venv (issue 13's bar: each of
# --version, status, verify --help at most 2.5x). Mean of N runs (default 20); hyperfine when installed.
#   bench/cli_start.sh [VENV] [N]      (VENV default .venv; run from the checkout)
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${1:-.venv}; runs=${2:-20}
mean() {  # seconds per run of "$@"
  local start end
  start=$(date +%s%N)
  for _ in $(seq "$runs"); do "$@" >/dev/null 2>&1 || true; done
  end=$(date +%s%N)
  awk -v ns=$((end - start)) -v n="$runs" 'BEGIN { printf "%.4f", ns / n / 1e9 }'
}
"$venv/bin/wipe-agent" --version >/dev/null  # bytecode cache warm
base=$(mean "$venv/bin/python" -c 'import click')
echo "python -c 'import click': ${base}s"
for arguments in "--version" "status" "verify --help"; do
  # shellcheck disable=SC2086  # the arguments are words
  took=$(mean "$venv/bin/wipe-agent" $arguments)
  echo "wipe-agent $arguments: ${took}s = $(awk -v a="$took" -v b="$base" 'BEGIN { printf "%.2f", a / b }')x"
done
