"""``ecr-ocir-sync``: copy and delete images between registries.

Exit status: 0 when every destination succeeded, 1 when any failed, 2 for
bad usage (malformed references, unreadable settings).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING

from ecr_ocir_sync import __version__
from ecr_ocir_sync.cli.config_check import add_config_command, run_config_command
from ecr_ocir_sync.cli.service_commands import add_service_commands, run_service_command
from ecr_ocir_sync.cli.status import add_status_command, run_status_command
from ecr_ocir_sync.cli.usage_command import add_usage_command, run_usage_command
from ecr_ocir_sync.errors import ConfigError, SyncError

# The settings model (pydantic), httpx and the engine are imported where a command
# needs them, not here: `--help` and a mistyped command answer at once.
if TYPE_CHECKING:
    from ecr_ocir_sync.engine.progress import ProgressListener
    from ecr_ocir_sync.engine.result import CopyResult
    from ecr_ocir_sync.oci.reference import ImageReference
    from ecr_ocir_sync.registry.pool import Registries
    from ecr_ocir_sync.settings import Settings

__all__ = ["main"]

_HEADER = "fix these settings:"

_EPILOG = """\
references look like host[:port]/repo/path:tag or host[:port]/repo/path@sha256:<hex>.

credentials, asked for only when a registry challenges:
  *.ocir.io        OCI_TENANCY (namespace), OCI_USERNAME, OCI_AUTH_TOKEN, or with
                   OCI_REGISTRY_AUTH=token_exchange a short-lived token from OCI IAM
                   signed as OCI_API_AUTH says
                   (OCIR_ENDPOINT_<KEY>=https://host overrides <key>.ocir.io)
  ECR hosts        AWS GetAuthorizationToken via the default AWS credential chain
  any registry     --authfile, else $REGISTRY_AUTH_FILE, else ~/.docker/config.json

examples:
  ecr-ocir-sync copy 123456789012.dkr.ecr.ap-southeast-2.amazonaws.com/app:1.4 \\
      mel.ocir.io/ns/app:1.4 syd.ocir.io/ns/app:1.4
  OCI_REPO_REGION_KEY=mel,syd OCI_TENANCY=ns \\
      ecr-ocir-sync copy 123456789012.dkr.ecr.ap-southeast-2.amazonaws.com/app:1.4
  ecr-ocir-sync copy --insecure localhost:5000 --json localhost:5000/app:1 localhost:5001/app:1
"""


def _ecr_host(text: str) -> tuple[str, tuple[str, str]]:
    host, sep, rest = text.rpartition("=")
    account, _, region = rest.partition(":")
    if not sep or not host or not account.isdigit() or len(account) != 12 or not region:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected HOST=ACCOUNT:REGION, e.g. "
            "ecr.internal:443=123456789012:ap-southeast-2"
        )
    return host, (account, region)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ecr-ocir-sync",
        description="Mirror container images from AWS ECR to Oracle OCIR regions.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--insecure",
        action="append",
        default=[],
        metavar="HOST[:PORT]",
        help="allow plain HTTP to this registry (repeatable); every other one is HTTPS",
    )
    common.add_argument("--authfile", type=Path, help="Docker-style auth file with logins")
    common.add_argument(
        "--ecr",
        action="append",
        type=_ecr_host,
        default=[],
        metavar="HOST=ACCOUNT:REGION",
        help="treat HOST as the ECR registry of ACCOUNT in REGION (private endpoints, tests)",
    )
    common.add_argument(
        "--json", action="store_true", help="print a machine-readable summary on stdout"
    )

    copy = commands.add_parser(
        "copy",
        parents=[common],
        help="copy an image (all platforms) to one or more destinations",
        description="Copy SOURCE to every DEST, reading each blob from SOURCE once. Without "
        "DEST, copy to every region in OCI_REPO_REGION_KEY under namespace OCI_TENANCY.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    copy.add_argument(
        "--no-referrers",
        action="store_true",
        help="copy the image only, not its signatures, SBOMs and attestations",
    )
    copy.add_argument("source", metavar="SOURCE")
    copy.add_argument("destinations", metavar="DEST", nargs="*")
    delete = commands.add_parser(
        "delete",
        parents=[common],
        help="delete a tag's manifest at one or more destinations",
        description="Delete, at each DEST, the manifest its tag resolves to there.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    delete.add_argument("destinations", metavar="DEST", nargs="+")
    add_service_commands(commands)
    add_status_command(commands)
    add_config_command(commands)
    add_usage_command(commands)
    return parser


# What copy and delete read: the OCIR login and endpoints, used only when present.
_REGISTRY_VARIABLES = (
    "OCI_TENANCY",
    "OCI_USERNAME",
    "OCI_AUTH_TOKEN",
    "OCIR_ENDPOINT_<KEY>",
    "REGISTRY_AUTH_FILE",
    "OCI_REGISTRY_AUTH",
    # how blobs move
    "SYNC_SPOOL_MAX_BYTES",
    "SYNC_UPLOAD_CHUNK_BYTES",
    "SYNC_STALL_SECONDS",
    "SYNC_HOST_CONNECTIONS",
    "SYNC_POOL_TIMEOUT_SECONDS",
)
# Judged only when OCIR tokens come from OCI IAM (OCI_REGISTRY_AUTH=token_exchange).
_TOKEN_VARIABLES = ("OCIR_TOKEN_ENDPOINT_<KEY>", "OCI_API_AUTH", "OCI_API_REGION_<KEY>")


def _destination_references(
    args: argparse.Namespace, source: ImageReference, settings: Settings
) -> list[ImageReference]:
    from ecr_ocir_sync.oci.reference import parse_reference  # noqa: PLC0415
    from ecr_ocir_sync.rules.regions import region_destinations  # noqa: PLC0415

    if args.destinations:
        references = [parse_reference(text) for text in args.destinations]
    else:
        if not (settings.given("OCI_REPO_REGION_KEY") and settings.given("OCI_TENANCY")):
            raise ConfigError(
                "no DEST given: name destinations, or set OCI_REPO_REGION_KEY (e.g. 'mel,syd') "
                "and OCI_TENANCY (the OCIR namespace)"
            )
        settings.require(["OCI_REPO_REGION_KEY", "OCI_TENANCY"], header=_HEADER)
        endpoints = {key: endpoint.host for key, endpoint in settings.ocir_endpoints.items()}
        references = region_destinations(
            source,
            region_keys=settings.region_keys,
            namespace=settings.namespace,
            endpoints=endpoints,
        )
    for reference in references:
        if reference.digest is not None:
            raise ConfigError(
                f"destination {reference} carries a digest; give a tag (or none, to keep the "
                "source's) — the digest is always the source's"
            )
    return references


def _registries(args: argparse.Namespace, settings: Settings) -> Registries:
    from ecr_ocir_sync.cloud.credential_chain import (  # noqa: PLC0415
        CredentialSettings,
        OcirLogin,
        build_credentials,
    )
    from ecr_ocir_sync.cloud.ocir_tokens import OcirTokenSettings  # noqa: PLC0415
    from ecr_ocir_sync.registry.pool import ConnectionLimits, Registries  # noqa: PLC0415
    from ecr_ocir_sync.settings import RegistryAuth  # noqa: PLC0415

    token_exchange = settings.registry_auth is RegistryAuth.TOKEN_EXCHANGE
    settings.require(
        _REGISTRY_VARIABLES + (_TOKEN_VARIABLES if token_exchange else ()), header=_HEADER
    )
    endpoints = settings.ocir_endpoints
    credentials = CredentialSettings(
        authfile=args.authfile or settings.registry_auth_file,
        ecr_hosts=dict(args.ecr),
        ocir=OcirLogin.from_settings(settings),
        ocir_tokens=OcirTokenSettings.from_settings(settings),
        ocir_hosts={key: endpoint.host for key, endpoint in endpoints.items()},
    )
    insecure = {*args.insecure, *(e.host for e in endpoints.values() if e.insecure)}
    limits = ConnectionLimits(settings.host_connections, settings.pool_timeout_seconds)
    return Registries(build_credentials(credentials), insecure=frozenset(insecure), limits=limits)


def _listener(args: argparse.Namespace) -> tuple[ProgressListener, AbstractContextManager[object]]:
    from ecr_ocir_sync.engine.progress import ignore_progress  # noqa: PLC0415

    if args.json or not sys.stderr.isatty():
        return ignore_progress, nullcontext()
    from ecr_ocir_sync.cli.display import LiveProgress  # noqa: PLC0415 - terminals only

    display = LiveProgress()
    return display, display


async def _run(args: argparse.Namespace, settings: Settings) -> CopyResult:
    import tempfile  # noqa: PLC0415

    from ecr_ocir_sync.engine.copy import CopyOptions  # noqa: PLC0415
    from ecr_ocir_sync.engine.delete import delete_image  # noqa: PLC0415 - keeps --help fast
    from ecr_ocir_sync.engine.destination import Destination  # noqa: PLC0415
    from ecr_ocir_sync.engine.mirror import mirror_image  # noqa: PLC0415
    from ecr_ocir_sync.engine.spool import Spool  # noqa: PLC0415
    from ecr_ocir_sync.oci.reference import parse_reference  # noqa: PLC0415

    async with _registries(args, settings) as registries:
        if args.command == "delete":
            references = [parse_reference(text) for text in args.destinations]
            targets = [Destination(registries.client(r.registry), r) for r in references]
            return await delete_image("(delete)", targets)
        source = parse_reference(args.source)
        targets = [
            Destination(registries.client(r.registry), r)
            for r in _destination_references(args, source, settings)
        ]
        listener, display = _listener(args)
        # copy has no volume of its own: its spool is a temporary directory (under
        # $TMPDIR), removed when the copy ends, whatever the outcome.
        with display, tempfile.TemporaryDirectory(prefix="ecr-ocir-sync-spool-") as spool_dir:
            options = CopyOptions(
                retry=registries.retry,
                spool=Spool.open(Path(spool_dir), settings.spool_max_bytes),
                stall_seconds=settings.stall_seconds,
                upload_chunk_bytes=settings.upload_chunk_bytes,
            )
            return await mirror_image(
                registries.client(source.registry),
                source,
                targets,
                referrers=not args.no_referrers,
                options=options,
                progress=listener,
            )


# Commands that report for themselves (copy and delete print a CopyResult below).
_COMMANDS: dict[str, Callable[[argparse.Namespace, Settings], int]] = {
    "serve": run_service_command,
    "jobs": run_service_command,
    "reconcile": run_service_command,
    "usage": run_usage_command,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import asyncio  # noqa: PLC0415

    from ecr_ocir_sync.settings import Settings  # noqa: PLC0415

    # The one place the environment is read; every command takes what it needs from here.
    settings = Settings.from_environ(os.environ)
    if args.command == "config":
        return run_config_command(args, settings)
    if args.command == "status":
        return run_status_command(args, settings)
    try:
        command = _COMMANDS.get(args.command)
        if command is not None:
            return command(args, settings)
        result = asyncio.run(_run(args, settings))
    except SyncError as error:
        print(f"ecr-ocir-sync: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ecr-ocir-sync: interrupted; nothing half-written was committed", file=sys.stderr)
        return 130
    from ecr_ocir_sync.cli.report import print_json, print_summary  # noqa: PLC0415

    if args.json:
        print_json(result, sys.stdout)
    else:
        print_summary(result, sys.stdout, action=args.command)
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
