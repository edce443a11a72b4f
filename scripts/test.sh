#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what it needs (Debian packages, the venv, the QEMU
# guest's kernel and initramfs), then pytest. As root, root tests must run, never skip.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
if [ "$(id -u)" -eq 0 ]; then
  export WIPE_AGENT_REQUIRE_ROOT=1
  # its own step, so apt and the kernel download stay out of the first system test's timeout
  bash tests/system/build_guest.sh
fi
exec .venv/bin/python -m pytest "$@"
