"""One registry over the OCI distribution API.

Manifests are fetched and pushed as raw bytes so digests are preserved; every
manifest read is checked against the digest the registry states and the one
asked for.  Blobs are probed with HEAD, streamed with GET (redirects to other
hosts followed without the registry's Authorization header, as ECR's
pre-signed storage URLs demand) whole or as a closed ``Range``, and uploaded
as the docker client does (POST, one streamed PATCH, PUT ``?digest=``) or in
``Content-Range`` chunks, with the upload's status asked for after a failure.

Credentials go only to the registry's own origin: every URL the registry hands
back (upload ``Location``, pagination ``Link``, redirects) passes
:meth:`RegistryClient._follow`, which refuses a step down from HTTPS to plain
HTTP, and :meth:`RegistryClient._request` attaches Authorization only to URLs
on the registry's origin.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from urllib.parse import quote, urljoin, urlsplit

import httpx

from ecr_ocir_sync.errors import AuthError, NotFoundError, ProtocolError, SyncError
from ecr_ocir_sync.oci.digest import Digest, digest_of, parse_digest
from ecr_ocir_sync.oci.manifest import Descriptor, ImageIndex, Manifest, parse_manifest
from ecr_ocir_sync.oci.mediatypes import MANIFEST_ACCEPT, OCI_INDEX
from ecr_ocir_sync.registry.auth import Authenticator
from ecr_ocir_sync.registry.credentials import CredentialProvider
from ecr_ocir_sync.registry.retry import RetryPolicy, with_retries
from ecr_ocir_sync.registry.transport import raise_for_status, send

__all__ = ["RegistryClient", "UploadStatus"]

_MAX_REDIRECTS = 5
_MAX_MANIFEST = 4 * 1024 * 1024  # the distribution registry's own limit
# Answers to GET /v2/<name>/referrers/<digest> that mean "no referrers API here": the spec
# says 404; older registries route the path nowhere (400, 405) or say they lack it (501).
_NO_REFERRERS_API = frozenset({400, 404, 405, 501})
# Answers to DELETE /v2/<name>/manifests/<tag> that mean "tags cannot be deleted here": the
# OCI spec says 400 or 405; distribution 2.8 answers 400 DIGEST_INVALID.
_NO_TAG_DELETE = frozenset({400, 405})
_UPLOAD_RANGE = re.compile(r"(?:bytes=)?0-(\d+)")


class UploadStatus:
    """Where an unfinished upload stands: its current URL and the bytes it holds."""

    __slots__ = ("location", "offset")

    def __init__(self, location: str, offset: int) -> None:
        self.location = location
        self.offset = offset


def _origin(url: str) -> tuple[str, str, int | None]:
    """Scheme, host and port (default ports made explicit), as credentials are scoped."""
    parsed = httpx.URL(url)
    default = {"http": 80, "https": 443}.get(parsed.scheme)
    return parsed.scheme, parsed.host.lower(), parsed.port or default


def pull_scope(repository: str) -> str:
    return f"repository:{repository}:pull"


def push_scope(repository: str) -> str:
    return f"repository:{repository}:pull,push"


class RegistryClient:
    """Talks to one registry host; shares the connection pool it is given."""

    def __init__(
        self,
        host: str,
        http: httpx.AsyncClient,
        credentials: CredentialProvider,
        *,
        insecure: bool = False,
        retry: RetryPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
        streams: int = 16,
    ) -> None:
        self.host = host
        # Blob bodies (reads and uploads) in flight to this host; see registry.pool.
        self.streams = asyncio.Semaphore(streams)
        self.base_url = f"{'http' if insecure else 'https'}://{host}"
        self._origin = _origin(self.base_url)
        self._http = http
        self._auth = Authenticator(host, credentials, http, clock)
        self.retry = retry or RetryPolicy()

    # -- plumbing -----------------------------------------------------------

    def _url(self, path: str) -> str:
        return urljoin(self.base_url, path)

    def _follow(self, current: str, link: str, where: str) -> str:
        """``link`` (a Location, Link or redirect target) resolved against ``current``;
        an HTTPS registry may never send the client to plain HTTP."""
        target = str(urljoin(current, link))
        scheme = urlsplit(target).scheme
        if scheme not in ("http", "https"):
            raise ProtocolError(f"{where}: the registry sent the client to {scheme!r} URL")
        if scheme == "http" and self._origin[0] == "https":
            raise ProtocolError(
                f"{where}: the registry sent the client from HTTPS to plain HTTP "
                f"({urlsplit(target).netloc}); refusing to send data unencrypted"
            )
        return target

    async def _auth_for(self, url: str, scope: str) -> str | None:
        """The Authorization header for ``url``: only on the registry's own origin."""
        if _origin(url) != self._origin:
            return None
        return await self._auth.header(scope)

    async def _request(
        self,
        method: str,
        url: str,
        scope: str,
        where: str,
        *,
        headers: dict[str, str] | None = None,
        content: bytes | AsyncIterator[bytes] | None = None,
        stream: bool = False,
    ) -> httpx.Response:
        """One request with auth; a 401 is answered once, then is final."""
        all_headers = dict(headers or {})
        auth = await self._auth_for(url, scope)
        if auth:
            all_headers["Authorization"] = auth
        request = self._http.build_request(method, url, headers=all_headers, content=content)
        response = await send(self._http, request, where=where, stream=stream)
        if response.status_code != 401:
            return response
        await response.aclose()
        if _origin(url) != self._origin:
            # The registry's credentials are not this origin's to ask for.
            raise AuthError(
                f"{where}: 401 Unauthorized from {urlsplit(url).netloc}, which is not "
                f"{self.host}; its credentials are not sent to another origin",
                status=401,
            )
        if content is not None and not isinstance(content, bytes):
            # A streamed body cannot be replayed; callers authenticate first (POST).
            raise AuthError(f"{where}: 401 Unauthorized during a streamed upload", status=401)
        all_headers["Authorization"] = await self._auth.answer(response, scope, where)
        request = self._http.build_request(method, url, headers=all_headers, content=content)
        response = await send(self._http, request, where=where, stream=stream)
        if response.status_code == 401:
            await response.aread()
            raise_for_status(response, where)
        return response

    def _where(self, action: str, repository: str) -> str:
        return f"{action} {self.host}/{repository}"

    # -- manifests ----------------------------------------------------------

    async def get_manifest(self, repository: str, reference: str) -> Manifest:
        """The manifest at ``reference`` (tag or digest), verified against its digest."""
        where = self._where(f"reading manifest {reference} from", repository)

        async def attempt() -> Manifest:
            url = self._url(f"/v2/{repository}/manifests/{reference}")
            response = await self._request(
                "GET", url, pull_scope(repository), where, headers={"Accept": MANIFEST_ACCEPT}
            )
            raise_for_status(response, where, 200)
            raw = response.content
            if len(raw) > _MAX_MANIFEST:
                raise ProtocolError(f"{where}: manifest of {len(raw)} bytes is too large")
            actual = digest_of(raw)
            stated = response.headers.get("Docker-Content-Digest")
            if stated and stated != actual:
                raise ProtocolError(f"{where}: registry states digest {stated}, bytes are {actual}")
            if reference.startswith("sha256:") and reference != actual:
                raise ProtocolError(f"{where}: asked for {reference}, bytes are {actual}")
            return parse_manifest(raw, response.headers.get("Content-Type"), where)

        return await with_retries(self.retry, attempt)

    async def manifest_digest(self, repository: str, reference: str) -> Digest | None:
        """The digest ``reference`` resolves to, or None when there is no such manifest."""
        where = self._where(f"checking manifest {reference} at", repository)

        async def attempt() -> Digest | None:
            url = self._url(f"/v2/{repository}/manifests/{reference}")
            response = await self._request(
                "HEAD", url, pull_scope(repository), where, headers={"Accept": MANIFEST_ACCEPT}
            )
            if response.status_code == 404:
                return None
            raise_for_status(response, where, 200)
            stated = response.headers.get("Docker-Content-Digest")
            if stated:
                return parse_digest(stated)
            try:
                return (await self.get_manifest(repository, reference)).digest
            except NotFoundError:
                return None

        return await with_retries(self.retry, attempt)

    async def put_manifest(self, repository: str, reference: str, manifest: Manifest) -> None:
        """Push ``manifest``'s original bytes under ``reference`` (tag or digest)."""
        where = self._where(f"writing manifest {manifest.digest} as {reference} to", repository)

        async def attempt() -> None:
            url = self._url(f"/v2/{repository}/manifests/{reference}")
            response = await self._request(
                "PUT",
                url,
                push_scope(repository),
                where,
                headers={"Content-Type": manifest.media_type},
                content=manifest.raw,
            )
            raise_for_status(response, where, 200, 201)
            stated = response.headers.get("Docker-Content-Digest")
            if stated and stated != manifest.digest:
                raise ProtocolError(
                    f"{where}: registry stored it as {stated}; it rewrote the manifest"
                )

        await with_retries(self.retry, attempt)

    async def delete_manifest(self, repository: str, digest: Digest) -> None:
        """Delete the manifest ``digest`` (and so every tag pointing at it)."""
        where = self._where(f"deleting manifest {digest} from", repository)

        async def attempt() -> None:
            url = self._url(f"/v2/{repository}/manifests/{digest}")
            response = await self._request("DELETE", url, push_scope(repository), where)
            raise_for_status(response, where, 200, 202)

        await with_retries(self.retry, attempt)

    async def delete_tag(self, repository: str, tag: str) -> bool:
        """Delete only ``tag`` (OCI distribution 1.1), leaving its manifest and other tags.

        False when the registry cannot delete a tag alone (400 / 405, as the spec allows);
        a tag that is already gone counts as deleted.
        """
        where = self._where(f"deleting tag {tag} from", repository)

        async def attempt() -> bool:
            url = self._url(f"/v2/{repository}/manifests/{tag}")
            response = await self._request("DELETE", url, push_scope(repository), where)
            if response.status_code in _NO_TAG_DELETE:
                return False
            raise_for_status(response, where, 200, 202, 404)
            return True

        return await with_retries(self.retry, attempt)

    async def list_tags(self, repository: str) -> list[str]:
        """Every tag of ``repository``, following ``Link`` pagination."""
        where = self._where("listing tags of", repository)
        tags: list[str] = []
        url: str | None = self._url(f"/v2/{repository}/tags/list")
        while url is not None:
            page_url = url

            async def attempt(page_url: str = page_url) -> httpx.Response:
                response = await self._request("GET", page_url, pull_scope(repository), where)
                raise_for_status(response, where, 200)
                return response

            response = await with_retries(self.retry, attempt)
            tags.extend(response.json().get("tags") or [])
            next_link = response.links.get("next", {}).get("url")
            url = self._follow(page_url, next_link, where) if next_link else None
        return tags

    async def list_referrers(
        self, repository: str, digest: Digest, artifact_type: str | None = None
    ) -> list[Descriptor] | None:
        """Descriptors of the manifests whose ``subject`` is ``digest`` (OCI 1.1 referrers API),
        following ``Link`` pagination; None when the registry has no referrers API.

        With ``artifact_type`` only referrers of that type are returned: the registry's
        filter when it says it applied it (``OCI-Filters-Applied``), else filtered here.
        """
        where = self._where(f"listing referrers of {digest} in", repository)
        url: str | None = self._url(f"/v2/{repository}/referrers/{digest}")
        if artifact_type is not None:
            url = f"{url}?artifactType={quote(artifact_type, safe='')}"
        found: list[Descriptor] = []
        first = True
        while url is not None:
            page_url = url

            async def attempt(page_url: str = page_url) -> httpx.Response | None:
                response = await self._request(
                    "GET", page_url, pull_scope(repository), where, headers={"Accept": OCI_INDEX}
                )
                if response.status_code in _NO_REFERRERS_API:
                    return None
                raise_for_status(response, where, 200)
                return response

            response = await with_retries(self.retry, attempt)
            if response is None:
                if first:
                    return None
                raise ProtocolError(f"{where}: a later page of the referrers list is missing")
            first = False
            if len(response.content) > _MAX_MANIFEST:
                raise ProtocolError(f"{where}: referrers list is too large")
            index = parse_manifest(response.content, OCI_INDEX, where)
            if not isinstance(index, ImageIndex):
                raise ProtocolError(f"{where}: the answer is not an image index")
            applied = response.headers.get("OCI-Filters-Applied", "")
            filtered = "artifactType" in (part.strip() for part in applied.split(","))
            found.extend(
                descriptor
                for descriptor in index.manifests
                if artifact_type is None or filtered or descriptor.artifact_type == artifact_type
            )
            next_link = response.links.get("next", {}).get("url")
            url = self._follow(page_url, next_link, where) if next_link else None
        return found

    # -- blobs --------------------------------------------------------------

    async def blob_exists(self, repository: str, digest: Digest) -> bool:
        where = self._where(f"checking blob {digest} at", repository)

        async def attempt() -> bool:
            url = self._url(f"/v2/{repository}/blobs/{digest}")
            response = await self._request("HEAD", url, pull_scope(repository), where)
            if response.status_code == 404:
                return False
            raise_for_status(response, where, 200)
            return True

        return await with_retries(self.retry, attempt)

    @asynccontextmanager
    async def open_blob(
        self, repository: str, digest: Digest, *, start: int = 0, end: int | None = None
    ) -> AsyncIterator[httpx.Response]:
        """A streaming response with the blob's bytes; read it with ``aiter_raw``.

        With ``end`` the bytes ``start``..``end`` (inclusive) are asked for with a
        closed ``Range`` (some stores answer nothing else); the answer must be a
        206 with exactly that ``Content-Range``.  The blob URL is requested
        afresh every time, so a redirect to pre-signed storage is a new one.
        """
        where = self._where(f"reading blob {digest} from", repository)
        ranged = end is not None
        headers = {"Range": f"bytes={start}-{end}"} if ranged else {}
        url = self._url(f"/v2/{repository}/blobs/{digest}")
        response = await self._request(
            "GET", url, pull_scope(repository), where, headers=headers, stream=True
        )
        try:
            for _ in range(_MAX_REDIRECTS):
                if not response.is_redirect:
                    break
                await response.aclose()
                target = self._follow(str(response.url), response.headers["Location"], where)
                # Pre-signed storage URLs reject a second auth mechanism: send none there.
                auth = await self._auth_for(target, pull_scope(repository))
                follow = dict(headers)  # the Range, if any, goes along
                if auth:
                    follow["Authorization"] = auth
                request = self._http.build_request("GET", target, headers=follow)
                response = await send(self._http, request, where=where, stream=True)
            expected = 206 if ranged else 200
            if response.status_code != expected:
                await response.aread()
                raise_for_status(response, where, expected)
            if ranged:
                _check_content_range(response, start, end, where)
            yield response
        finally:
            await response.aclose()

    async def start_upload(self, repository: str) -> str:
        """Open an upload session; returns its absolute URL."""
        where = self._where("starting a blob upload to", repository)

        async def attempt() -> str:
            url = self._url(f"/v2/{repository}/blobs/uploads/")
            response = await self._request("POST", url, push_scope(repository), where)
            raise_for_status(response, where, 202)
            return self._location(response, where)

        return await with_retries(self.retry, attempt)

    async def mount_blob(self, repository: str, digest: Digest, from_repository: str) -> bool:
        """Mount ``digest`` from another repository of this registry; False if refused."""
        where = self._where(f"mounting blob {digest} from {from_repository} into", repository)
        url = self._url(
            f"/v2/{repository}/blobs/uploads/?mount={quote(digest)}&from={quote(from_repository)}"
        )
        scope = f"{push_scope(repository)} {pull_scope(from_repository)}"
        response = await self._request("POST", url, scope, where)
        if response.status_code == 201:
            return True
        raise_for_status(response, where, 202)
        # The registry opened an ordinary upload instead; close it.
        await self.cancel_upload(repository, self._location(response, where))
        return False

    async def upload_blob(
        self, repository: str, location: str, digest: Digest, size: int, body: AsyncIterator[bytes]
    ) -> None:
        """Stream ``body`` in one PATCH, then commit with PUT ``?digest=``.

        If ``body`` raises (the source failed or its bytes did not verify), the
        PATCH is aborted and the PUT never sent: nothing is committed.
        """
        committed = await self.patch_upload(repository, location, digest, size, body)
        await self.commit_upload(repository, committed, digest)

    async def patch_upload(
        self,
        repository: str,
        location: str,
        digest: Digest,
        length: int,
        body: AsyncIterator[bytes],
        *,
        offset: int | None = None,
    ) -> str:
        """Send ``length`` bytes of the blob in one PATCH; the upload's next URL.

        With ``offset`` the PATCH carries ``Content-Range: offset-last`` (a chunk
        of a chunked or resumed upload); without, it is the one streamed PATCH.
        """
        where = self._where(f"writing blob {digest} to", repository)
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(length)}
        if offset is not None:
            headers["Content-Range"] = f"{offset}-{offset + length - 1}"
        response = await self._request(
            "PATCH", location, push_scope(repository), where, headers=headers, content=body
        )
        if response.status_code not in (202, 204):
            await response.aread()
        raise_for_status(response, where, 202, 204)
        return self._location(response, where)

    async def commit_upload(self, repository: str, location: str, digest: Digest) -> None:
        """PUT ``?digest=``: the registry checks the bytes it holds and stores the blob."""
        where = self._where(f"committing blob {digest} to", repository)
        separator = "&" if urlsplit(location).query else "?"
        response = await self._request(
            "PUT",
            f"{location}{separator}digest={quote(digest)}",
            push_scope(repository),
            where,
            headers={"Content-Length": "0"},
            content=b"",
        )
        raise_for_status(response, where, 201, 204)

    async def upload_status(self, repository: str, location: str) -> UploadStatus | None:
        """Where an upload stands (GET on its URL, ``Range`` header); None when the
        registry cannot say (the session is gone, invalid, or the answer unclear)."""
        where = self._where("asking where an upload stands at", repository)
        try:
            response = await self._request("GET", location, push_scope(repository), where)
        except SyncError:
            return None
        await response.aread()
        if response.status_code != 204:
            return None
        stated = response.headers.get("Range")
        offset = 0
        if stated:
            match = _UPLOAD_RANGE.fullmatch(stated.strip())
            if match is None:
                return None
            # "0-0" is ambiguous: the distribution registry states it for 0 bytes as well
            # as for 1; take 0 (a wrong guess is refused with 416, then a new session starts).
            last = int(match.group(1))
            offset = last + 1 if last > 0 else 0
        next_location = response.headers.get("Location")
        try:
            where_now = (
                self._follow(str(response.url), next_location, where) if next_location else location
            )
        except SyncError:
            return None
        return UploadStatus(where_now, offset)

    async def cancel_upload(self, repository: str, location: str) -> None:
        """Best effort: tell the registry to drop an unfinished upload."""
        where = self._where("cancelling an upload to", repository)
        try:
            response = await self._request("DELETE", location, push_scope(repository), where)
            await response.aclose()
        except Exception:  # noqa: BLE001, S110 - the registry expires abandoned uploads anyway
            pass

    def _location(self, response: httpx.Response, where: str) -> str:
        location = response.headers.get("Location")
        if not location:
            raise ProtocolError(f"{where}: {response.status_code} without a Location header")
        return self._follow(str(response.url), location, where)


def _check_content_range(response: httpx.Response, start: int, end: int | None, where: str) -> None:
    """A ranged answer must be exactly the bytes asked for, or it is not used."""
    stated = response.headers.get("Content-Range", "")
    match = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+|\*)", stated.strip())
    if match is None or (int(match.group(1)), int(match.group(2))) != (start, end):
        raise ProtocolError(
            f"{where}: asked for bytes {start}-{end}, the answer's Content-Range is "
            f"{stated or 'missing'}; the registry does not honour Range requests"
        )
