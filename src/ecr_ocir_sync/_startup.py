"""Start-up cost control, run before anything imports httpx.

``import httpx`` also imports httpx's own command line (``httpx._main``) when
click is installed — and uvicorn installs click — which drags in click, rich
and pygments: about 65 ms, a quarter of ``ecr-ocir-sync --help``, for code
this project never runs (bench/internals.py, bench/RESULTS.md).  A stand-in
module takes its place; calling it says what happened.  ``httpx._main`` is an
httpx internal: tests/test_internals.py fails when httpx stops importing it
that way (the stand-in would then do nothing).
"""

from __future__ import annotations

import sys
import types

__all__: list[str] = []


def _httpx_cli_unavailable(*_args: object, **_kwargs: object) -> None:
    raise SystemExit("the httpx command line is not loaded inside ecr-ocir-sync")


if "httpx" not in sys.modules and "httpx._main" not in sys.modules:
    _stand_in = types.ModuleType("httpx._main")
    _stand_in.main = _httpx_cli_unavailable  # type: ignore[attr-defined]
    sys.modules["httpx._main"] = _stand_in
