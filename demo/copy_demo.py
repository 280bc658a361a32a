"""``make demo``: mirror a generated image from a local "ECR" to two local "OCIR regions".

Three real registries start on loopback ports (the "syd" one demands a
login, as OCIR does); a multi-platform image is pushed to the "ECR" one;
the CLI mirrors it to every region in OCI_REPO_REGION_KEY; skopeo shows what
landed; a second run shows that nothing is sent twice.  Everything started
is stopped at the end.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.support import skopeo
from tests.support.images import Pusher, build_image, build_index, layer_bytes
from tests.support.registry import RegistryServer

CLI = str(Path(sys.executable).parent / "ecr-ocir-sync")
TOKEN = "demo-token-not-a-secret"  # noqa: S105 - a throwaway login for a loopback registry


def banner(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m", flush=True)


def main() -> int:
    workdir = Path(tempfile.mkdtemp(prefix="ecr-ocir-sync-demo-"))
    servers = [
        RegistryServer(workdir / "ecr"),
        RegistryServer(workdir / "mel"),
        RegistryServer(workdir / "syd", username="demo/mirror", password=TOKEN),
    ]
    try:
        for server in servers:
            server.start()
        ecr, mel, syd = servers
        banner(f'registries: "ECR" {ecr.host}, "mel.ocir.io" {mel.host}, "syd.ocir.io" {syd.host}')

        shared = layer_bytes(8 * 1024 * 1024, 1)
        index = build_index(
            [
                (build_image([shared, layer_bytes(6 * 1024 * 1024, 2)], oci=True), "amd64"),
                (build_image([shared, layer_bytes(6 * 1024 * 1024, 3)], oci=True), "arm64"),
            ]
        )
        pusher = Pusher(ecr.url)
        pusher.index("team/web", "1.0", index)
        pusher.close()
        print(f"pushed {ecr.host}/team/web:1.0 (2 platforms, a shared base layer) @ {index.digest}")

        env = {
            **os.environ,
            "OCI_REPO_REGION_KEY": "mel,syd",
            "OCI_TENANCY": "demo",
            "OCI_USERNAME": "mirror",
            "OCI_AUTH_TOKEN": TOKEN,
            "OCIR_ENDPOINT_MEL": f"http://{mel.host}",
            "OCIR_ENDPOINT_SYD": f"http://{syd.host}",
        }
        command = [CLI, "copy", f"--insecure={ecr.host}", f"{ecr.host}/team/web:1.0"]
        banner("ecr-ocir-sync copy " + " ".join(command[2:]) + "   # OCI_REPO_REGION_KEY=mel,syd")
        first = subprocess.run(command, env=env, check=False)
        banner("what landed, according to skopeo")
        for server, creds in ((mel, None), (syd, f"demo/mirror:{TOKEN}")):
            digest = skopeo.manifest_digest(f"{server.host}/demo/team/web:1.0", creds)
            same = "same digest as ECR" if digest == index.digest else "DIFFERENT DIGEST"
            print(f"{server.host}/demo/team/web:1.0 @ {digest}  ({same})")
        banner("second run: everything is there, nothing is sent")
        second = subprocess.run(command, env=env, check=False)
        return first.returncode or second.returncode
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
