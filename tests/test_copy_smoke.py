from __future__ import annotations

from ecr_ocir_sync.engine.copy import CopyOptions, copy_image
from ecr_ocir_sync.engine.destination import Destination
from ecr_ocir_sync.oci.reference import parse_reference
from tests.conftest import FAST_RETRY, PASSWORD, USER
from tests.support import skopeo
from tests.support.images import build_image, layer_bytes


async def test_smoke(source, dest_open, dest_basic, push_source, registries, tmp_path):
    image = build_image([layer_bytes(100_000, 1), layer_bytes(300_000, 2)])
    push_source.image("app", "1.0", image)
    src = parse_reference(f"{source.host}/app:1.0")
    dests = [
        Destination(registries.client(h), parse_reference(f"{h}/ns/app"))
        for h in (dest_open.host, dest_basic.host)
    ]
    result = await copy_image(
        registries.client(source.host), src, dests, options=CopyOptions(retry=FAST_RETRY)
    )
    print(result)
    assert result.ok
    assert skopeo.manifest_digest(f"{dest_open.host}/ns/app:1.0") == image.digest
    creds = f"{USER}:{PASSWORD}"
    assert skopeo.manifest_digest(f"{dest_basic.host}/ns/app:1.0", creds) == image.digest
    skopeo.pull_all(f"{dest_basic.host}/ns/app:1.0", tmp_path / "out", creds)
