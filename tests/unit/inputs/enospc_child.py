"""Child process for the full-state-filesystem test: the real ``wipe-agent`` main(), whose state
filesystem really fills up (a filler file written until ENOSPC) once the job has begun writing.

Usage: python -m tests.unit.inputs.enospc_child FILLER wipe-agent-arguments...

Only *when* the filesystem fills is arranged (at the job's first progress report, i.e. mid-job);
the full filesystem, the registry and every write are real.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from agent.cli import main as cli_main
from agent.jobs import runner as runner_module


def _fill(path: str) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while os.write(descriptor, bytes(4096)):
            pass
    except OSError:
        pass  # ENOSPC: full
    finally:
        os.close(descriptor)


def main() -> None:
    """Fill FILLER's filesystem at the first progress report of the job, then behave as wipe-agent."""
    filler = sys.argv.pop(1)
    original = runner_module.JobRunner.run
    filled: list[bool] = []

    def run(self: runner_module.JobRunner, request: Any, progress: Any = None, *args: Any, **kwargs: Any) -> Any:
        def report(*values: Any) -> None:
            if not filled:
                filled.append(True)
                _fill(filler)
            if progress is not None:
                progress(*values)

        return original(self, request, report, *args, **kwargs)

    runner_module.JobRunner.run = run  # type: ignore[method-assign]
    cli_main.main()


if __name__ == "__main__":
    main()
