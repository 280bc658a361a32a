"""``ecr-ocir-sync status``: a running service's ``GET /status`` on one screen.

Exit status: 0 when the service answered, 2 when it could not be reached or
refused the key (the message says which setting to fix).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO

from ecr_ocir_sync.cli.report import human_size
from ecr_ocir_sync.settings_values import DEFAULT_STATUS_URL

if TYPE_CHECKING:
    from ecr_ocir_sync.settings import Settings

__all__ = ["add_status_command", "render_status", "run_status_command"]

DEFAULT_URL = DEFAULT_STATUS_URL
_CLEAR = "\x1b[H\x1b[2J"
_RUNNING_SHOWN = 8
_FAILURES_SHOWN = 5


class StatusUnavailableError(Exception):
    """The service could not be asked; the message says what to fix."""


def add_status_command(commands: Any) -> None:
    status = commands.add_parser(
        "status",
        help="a running service's backlog, running jobs, failures and last reconciliation",
        description="Ask a running service (GET /status) and show it on one screen. "
        f"The URL comes from --url or SYNC_STATUS_URL (default {DEFAULT_URL}), the key from "
        "--api-key or SYNC_API_KEY (prefer the variable: flags show in ps).",
    )
    status.add_argument("--url", help="the service's base URL (default $SYNC_STATUS_URL)")
    status.add_argument("--api-key", help="the service's SYNC_API_KEY (default $SYNC_API_KEY)")
    status.add_argument(
        "--watch",
        nargs="?",
        const=2.0,
        type=float,
        metavar="SECONDS",
        help="redraw every SECONDS (default 2) until interrupted",
    )
    status.add_argument(
        "--json", action="store_true", help="print the document (with --watch: one per line)"
    )


def _ago(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"


def _when(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _image(job: dict[str, Any]) -> str:
    separator, version = (":", job["tag"]) if job["tag"] else ("@", job["digest"])
    return f"{job['action']} {job['repository']}{separator}{version}"


def _progress(record: dict[str, Any]) -> str:
    sent, needed = record["bytes_sent"], record.get("bytes_needed", 0)
    text = human_size(sent)
    if needed:
        text += f" / {human_size(needed)} ({min(100, sent * 100 // needed)}%)"
    return (
        f"{text}  blobs {record['blobs_copied']} copied, {record['blobs_skipped']} present, "
        f"{record['blobs_mounted']} mounted"
    )


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def render_status(document: dict[str, Any], url: str, out: TextIO, width: int = 100) -> None:
    now = document["now"]
    backlog, workers = document["backlog"], document["workers"]
    lines = [
        f"ecr-ocir-sync at {url}  {_when(now)}",
        (
            f"backlog    pending {backlog['pending']}  running {backlog['running']}  "
            f"failed {backlog['failed']}  "
            f"oldest pending {_ago(backlog['oldest_pending_age_seconds'])}"
        ),
        f"workers    {workers['alive']} of {workers['configured']} alive",
        "",
        f"running ({len(document['running'])})" + ("" if document["running"] else ": nothing"),
    ]
    for job in document["running"][:_RUNNING_SHOWN]:
        since = now - (job["started"] or now)
        lines.append(f"  {_image(job)}  attempt {job['attempts']}, {_ago(since)}")
        lines += [
            f"    {key:<8} {record['status']:<10} {_progress(record)}"
            for key, record in job["destinations"].items()
        ]
    if len(document["running"]) > _RUNNING_SHOWN:
        hidden = len(document["running"]) - _RUNNING_SHOWN
        lines.append(f"  … and {hidden} more (--json lists all)")
    failures = document["recent_failures"]
    lines += ["", f"recent failures ({len(failures)})" + ("" if failures else ": none")]
    for job in failures[:_FAILURES_SHOWN]:
        finished = _when(job["finished"]) if job["finished"] else "?"
        lines.append(f"  {finished}  {_image(job)}  attempts {job['attempts']}  id {job['id']}")
        lines.append(f"    {job['last_error'] or 'no reason recorded'}")
    lines += ["", _reconciliation(document["reconciliation"], now)]
    out.write("\n".join(_clip(line, width) for line in lines) + "\n")


def _reconciliation(reconciliation: dict[str, Any], now: float) -> str:
    interval = reconciliation["interval_seconds"]
    every = f"every {_ago(interval)}" if interval else "no periodic pass in this process"
    last = reconciliation["last_pass"]
    if last is None:
        return f"reconciliation  {every}; no pass recorded"
    if last["finished"] is None:
        return f"reconciliation  {every}; a pass is running since {_ago(now - last['started'])}"
    ended = _ago(now - last["finished"])
    head = f"reconciliation  {every}; last pass {last['outcome']} {ended} ago"
    summary = last["summary"] or {}
    if last["outcome"] != "complete":
        return f"{head}\n  {summary.get('error', 'no reason recorded')}"
    drift = ", ".join(f"{kind} {summary.get(kind, 0)}" for kind in ("copy", "update", "delete"))
    return (
        f"{head}\n  drift: {drift}; in sync {summary.get('in_sync', 0)}; "
        f"errors {summary.get('errors', 0)}; {summary.get('jobs', 0)} job(s) enqueued"
    )


def fetch_status(url: str, api_key: str | None) -> dict[str, Any]:
    import httpx  # noqa: PLC0415 - loaded by this command only: `--help` stays fast

    headers = {"X-API-Key": api_key} if api_key else {}
    try:
        answer = httpx.get(f"{url.rstrip('/')}/status", headers=headers, timeout=10)
    except httpx.HTTPError as error:
        raise StatusUnavailableError(
            f"cannot reach {url} ({error}); set SYNC_STATUS_URL or --url, e.g. after "
            "`kubectl port-forward svc/ecr-ocir-sync 8080:80`"
        ) from None
    if answer.status_code == 401:
        raise StatusUnavailableError(
            f"{url} refused the API key: set SYNC_API_KEY (or --api-key) to the service's key"
        )
    if answer.status_code != 200:
        raise StatusUnavailableError(
            f"{url}/status answered {answer.status_code}: {answer.text[:200]}"
        )
    document: dict[str, Any] = answer.json()
    return document


def _show(url: str, key: str | None, args: argparse.Namespace, out: TextIO) -> None:
    document = fetch_status(url, key)
    if args.json:
        out.write(json.dumps(document, indent=None if args.watch else 2) + "\n")
    else:
        # Clipped to the terminal, so a screen stays one screen; whole lines into a pipe.
        width = shutil.get_terminal_size().columns if out.isatty() else 10_000
        render_status(document, url, out, width)


def run_status_command(
    args: argparse.Namespace, settings: Settings, out: TextIO = sys.stdout
) -> int:
    url = args.url or settings.status_url
    secret = settings.api_key
    key = args.api_key or (secret.get_secret_value() if secret else None)
    problems = [] if args.api_key else settings.problems(["SYNC_API_KEY"])
    if problems:  # a malformed key would only be refused: say what is wrong with it
        print(f"ecr-ocir-sync: error: {problems[0]}", file=sys.stderr)
        return 2
    if args.watch is None:
        try:
            _show(url, key, args, out)
        except StatusUnavailableError as error:
            print(f"ecr-ocir-sync: error: {error}", file=sys.stderr)
            return 2
        return 0
    try:
        while True:
            if not args.json:
                out.write(_CLEAR)
            try:
                _show(url, key, args, out)
            except StatusUnavailableError as error:  # keep watching: it may come back
                out.write(f"{_when(time.time())}  {error}\n")
            out.flush()
            time.sleep(max(0.2, args.watch))
    except KeyboardInterrupt:
        return 0
