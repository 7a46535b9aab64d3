"""Schemathesis against a live server: generated requests to every documented operation.

The server is the real app (PAYLOAD_ENCRYPTION=optional, so plain JSON bodies reach the models)
behind werkzeug's threaded server on a free 127.0.0.1 port; every request carries an admin
("*") bearer token. Each response must be no 5xx and conform to /openapi.json: a documented
status, its media type, its schema and its required headers.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.config import SchemathesisConfig

from app import create_app
from app.openapi import build_document
from tests.conftest import Auth, instance_overrides
from tests.fixtures import serve_in_thread

# Per operation and generation mode; a longer adversarial run: TORCHGATE_SCHEMATHESIS_EXAMPLES=500.
MAX_EXAMPLES = int(os.environ.get("TORCHGATE_SCHEMATHESIS_EXAMPLES", "15"))
# A schema-valid request may still be refused where the refusal rests on state the schema
# cannot carry: wrong credentials are 400 invalid_grant / 401 invalid_client (RFC 6749 §5.2);
# a model call's inputs are checked against that model's manifest (422) and its envelope against
# the caller's keys (400/403).
REFUSED_BY_STATE = ["2xx", "400", "401", "403", "404", "413", "415", "422", "429", "503"]
CONFIG = {"operations": [
    {"include-path": "/auth/token",
     "checks": {"positive_data_acceptance": {"expected-statuses": ["2xx", "400", "401", "429"]}}},
    {"include-tag-regex": "^(predict|oip)$", "include-method": "POST",
     "checks": {"positive_data_acceptance": {"expected-statuses": REFUSED_BY_STATE}}},
]}


@dataclass(frozen=True)
class LiveServer:
    """A running server's URL and the admin token its fuzzed requests carry."""

    url: str
    token: str
    tally: Counter = field(default_factory=Counter)


@pytest.fixture(scope="module")
def live_server(tmp_path_factory, tiny_repository) -> Iterator[LiveServer]:
    instance = tmp_path_factory.mktemp("schemathesis")
    app = create_app(instance_overrides(instance / "instance", tiny_repository,
                                       payload_encryption="optional"))
    with serve_in_thread(app) as url:
        live = LiveServer(url, Auth(app).token("fuzzer", ("admin",)))
        yield live
    print(f"schemathesis: {live.tally.total()} cases over {len(live.tally)} operations")


@pytest.fixture(scope="module")
def live_schema(live_server: LiveServer):
    """The document as the live server serves it, loaded by schemathesis."""
    config = SchemathesisConfig.from_dict(CONFIG)
    return schemathesis.openapi.from_url(f"{live_server.url}/openapi.json", config=config)


def generation_plan() -> list[tuple[str, str, GenerationMode]]:
    """Every operation with valid data; those with parameters or a body with invalid data too."""
    plan = []
    for path, item in sorted(build_document()["paths"].items()):
        for method, operation in item.items():
            negatable = "parameters" in operation or "requestBody" in operation
            modes = list(GenerationMode) if negatable else [GenerationMode.POSITIVE]
            plan += [(path, method.upper(), mode) for mode in modes]
    return plan


PLAN = generation_plan()


@pytest.mark.parametrize(("path", "method", "mode"), PLAN,
                         ids=[f"{m} {p} {mode}" for p, m, mode in PLAN])
def test_generated_requests_conform(live_server: LiveServer, live_schema, path: str,
                                    method: str, mode: GenerationMode):
    operation = live_schema[path][method]
    headers = {"Authorization": f"Bearer {live_server.token}"}

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    def call_and_validate(case) -> None:
        live_server.tally[f"{method} {path}"] += 1
        case.call_and_validate(base_url=live_server.url, headers=headers, timeout=10)

    call_and_validate()


def test_a_reply_the_document_does_not_allow_is_caught(live_server: LiveServer):
    """The harness can fail: against a document that expects another /healthz body, it does."""
    document = build_document()
    document["components"]["schemas"]["Health"]["properties"]["status"] = {"const": "fine"}
    operation = schemathesis.openapi.from_dict(document)["/healthz"]["GET"]
    with pytest.raises(BaseExceptionGroup) as caught:
        operation.Case().call_and_validate(base_url=live_server.url)
    assert caught.group_contains(AssertionError, match="Response violates schema")
