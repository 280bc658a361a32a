"""Fixtures that start real registries on loopback and clean up after themselves."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from ecr_ocir_sync.registry.credentials import Credentials, StaticCredentials
from ecr_ocir_sync.registry.pool import Registries
from ecr_ocir_sync.registry.retry import RetryPolicy
from tests.support.images import Pusher
from tests.support.oci_api import ApiKeyConfig, OciApiServer, write_api_key_config
from tests.support.postgres import PostgresServer
from tests.support.registry import RegistryServer
from tests.support.service import ServiceProcess

USER, PASSWORD = "mirror", "s3cret-test-only"

# Short backoff keeps failure-path tests quick; the behaviour is the same.
FAST_RETRY = RetryPolicy(attempts=3, base_delay=0.05, max_delay=0.2)


@pytest.fixture
def start_registry(tmp_path: Path) -> Iterator[Callable[..., RegistryServer]]:
    started: list[RegistryServer] = []

    def start(name: str, **options: object) -> RegistryServer:
        server = RegistryServer(tmp_path / name, **options).start()  # type: ignore[arg-type]
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def source(start_registry: Callable[..., RegistryServer]) -> RegistryServer:
    return start_registry("source")


@pytest.fixture
def dest_open(start_registry: Callable[..., RegistryServer]) -> RegistryServer:
    return start_registry("dest-open")


@pytest.fixture
def dest_basic(start_registry: Callable[..., RegistryServer]) -> RegistryServer:
    """A destination that demands a login, like OCIR."""
    return start_registry("dest-basic", username=USER, password=PASSWORD)


@pytest.fixture
def push_source(source: RegistryServer) -> Iterator[Pusher]:
    pusher = Pusher(source.url)
    yield pusher
    pusher.close()


def make_registries(*insecure_hosts: str, logins: dict[str, Credentials]) -> Registries:
    """A client pool for test registries: plain HTTP to each host named."""
    return Registries(
        StaticCredentials(logins), insecure=frozenset(insecure_hosts), retry=FAST_RETRY
    )


@pytest.fixture
async def registries(
    source: RegistryServer, dest_open: RegistryServer, dest_basic: RegistryServer
) -> AsyncIterator[Registries]:
    logins = {dest_basic.host: Credentials(USER, PASSWORD)}
    async with make_registries(source.host, dest_open.host, dest_basic.host, logins=logins) as pool:
        yield pool


@pytest.fixture
def start_service_process(tmp_path: Path) -> Iterator[Callable[..., ServiceProcess]]:
    """Starts ``ecr-ocir-sync serve`` processes; stops them at the end of the test."""
    started: list[ServiceProcess] = []

    def start(
        env: dict[str, str], data_dir: Path | None = None, port: int | None = None
    ) -> ServiceProcess:
        service = ServiceProcess(data_dir or tmp_path / "data", env)
        if port is not None:
            service.port = port
        started.append(service.start())
        return service

    yield start
    for service in started:
        service.stop()


# -- the scripted OCI API (tests/support/oci_api.py) -----------------------------------


@pytest.fixture
def api_key(tmp_path: Path) -> ApiKeyConfig:
    return write_api_key_config(tmp_path / "oci", profile="MIRROR")


@pytest.fixture
def start_api() -> Iterator[Callable[..., OciApiServer]]:
    started: list[OciApiServer] = []

    def start(**options: object) -> OciApiServer:
        server = OciApiServer(**options).start()  # type: ignore[arg-type]
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
    for server in started:
        server.check_finished()


@pytest.fixture
def oci_api(start_api: Callable[..., OciApiServer], api_key: ApiKeyConfig) -> OciApiServer:
    return start_api(verify_key=api_key.public_key)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One real PostgreSQL server for the session; each test takes a database of its own."""
    server = PostgresServer().start()
    yield server
    server.stop()


@pytest.fixture
def database_url(postgres_server: PostgresServer) -> str:
    """The URL of a new, empty database (the job store creates its schema in it)."""
    return postgres_server.create_database()


@pytest.fixture
def moto_server() -> Iterator[str]:
    """moto's ECR API on a loopback port, for processes other than this one."""
    import httpx  # noqa: PLC0415
    from moto.server import ThreadedMotoServer  # noqa: PLC0415

    from tests.support.ports import free_port  # noqa: PLC0415

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    httpx.post(f"{url}/moto-api/reset")  # moto's state is per process, not per server
    yield url
    server.stop()
