"""Fixtures that start real gateways (gunicorn, 2 workers, 127.0.0.1) and the nginx front, and
always stop them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import pytest

from tests.conftest import env_url
from tests.ops.front import NginxFront, nginx_binary
from tests.ops.gateway import GatewayProcess, gateways
from tests.ops.processes import free_port
from tests.ops.services import Forwarder, ThrowawayRedis, fresh_database


@pytest.fixture
def gateway_process(tmp_path_factory) -> Iterator[Callable[..., GatewayProcess]]:
    """start(name, settings, keys=, identities=, server_env=): stopped when the test ends."""
    with gateways(tmp_path_factory) as start:
        yield start


@pytest.fixture(scope="session")
def production_gateway(tmp_path_factory) -> Iterator[GatewayProcess]:
    """One production gateway (SQLite store and database) shared by tests that do not break it."""
    with gateways(tmp_path_factory) as start:
        yield start("production")


@pytest.fixture(scope="session")
def test_database_url() -> str:
    return env_url("TORCHGATE_TEST_DATABASE_URL")


@pytest.fixture(scope="session")
def test_redis_url() -> str:
    return env_url("TORCHGATE_TEST_REDIS_URL")


@pytest.fixture(scope="module")
def module_database(test_database_url) -> Iterator[str]:
    """A fresh PostgreSQL database for one test module (its audit trail is the module's alone)."""
    with fresh_database(test_database_url) as url:
        yield url


@pytest.fixture(scope="module")
def throwaway_redis() -> Iterator[ThrowawayRedis]:
    """A redis-server of the module's own, which its tests may stop and start again."""
    redis = ThrowawayRedis()
    try:
        redis.start()
    except RuntimeError as exc:
        pytest.skip(str(exc))
    try:
        yield redis
    finally:
        redis.stop()


@pytest.fixture(scope="module")
def database_forwarder(test_database_url) -> Iterator[Forwarder]:
    """A TCP path to the test PostgreSQL server that a test can cut and restore."""
    from sqlalchemy.engine import make_url

    url = make_url(test_database_url)
    forwarder = Forwarder(url.host or "127.0.0.1", url.port or 5432)
    forwarder.restore()
    try:
        yield forwarder
    finally:
        forwarder.cut()



def _skip_without_nginx() -> None:
    if nginx_binary() is None:
        pytest.skip("nginx is not installed (.ci/run installs the Debian package)")


@pytest.fixture(scope="session")
def nginx_front(request, tmp_path_factory) -> Iterator[NginxFront]:
    """The shipped nginx front (deploy/nginx/sidecar.conf) in front of the production gateway."""
    _skip_without_nginx()
    gateway: GatewayProcess = request.getfixturevalue("production_gateway")
    front = NginxFront.start(tmp_path_factory.mktemp("nginx"), urlsplit(gateway.url).port)
    try:
        yield front
    finally:
        front.stop()


@pytest.fixture
def nginx_without_gateway(tmp_path) -> Iterator[NginxFront]:
    """The shipped nginx front with nothing listening behind it (gunicorn down)."""
    _skip_without_nginx()
    front = NginxFront.start(tmp_path, free_port())
    try:
        yield front
    finally:
        front.stop()
