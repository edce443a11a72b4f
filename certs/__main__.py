"""``python -m certs verify ...``: the partners' verifier entry point (see :mod:`certs.cli`)."""

from __future__ import annotations

import sys

from certs.cli import main

if __name__ == "__main__":
    sys.exit(main())
