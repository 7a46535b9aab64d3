"""Fixtures of the security tests: `backend` (each shared-store backend) and `store`."""

from __future__ import annotations

import pytest

from tests.security.store_backends import BACKENDS, backend_fixture, store_fixture

backend = pytest.fixture(params=BACKENDS, name="backend")(backend_fixture)
store = pytest.fixture(name="store")(store_fixture)
