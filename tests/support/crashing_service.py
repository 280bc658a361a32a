"""``ecr-ocir-sync`` with one fault only tests can switch on.

Run as ``python tests/support/crashing_service.py serve …`` with
``TEST_CRASH_REPOSITORY`` set: an attempt at a job for that repository ends
the process at once, as the kernel's out-of-memory killer would.  The fault
lives here, in the tests, not in the product.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from ecr_ocir_sync.cli.main import main
from ecr_ocir_sync.service import runner

_run = runner.JobRunner.run


async def _run_or_die(self: runner.JobRunner, job: Any, on_progress: Any) -> Any:
    if job.repository == os.environ["TEST_CRASH_REPOSITORY"]:
        os._exit(137)
    return await _run(self, job, on_progress)


runner.JobRunner.run = _run_or_die  # type: ignore[method-assign]

if __name__ == "__main__":
    sys.exit(main())
