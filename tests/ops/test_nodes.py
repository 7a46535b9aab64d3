"""Two gateway nodes (two gunicorn masters, two instance dirs) sharing Redis and PostgreSQL."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from tests.ops.client import FORM, bearer, call
from tests.ops.gateway import GatewayProcess, gateways

pytestmark = pytest.mark.slow

ROWS = {"inputs": [[0.5, -1.0, 2.0, 0.25]]}


@pytest.fixture(scope="module")
def nodes(tmp_path_factory, test_redis_url, module_database
          ) -> Iterator[tuple[GatewayProcess, GatewayProcess]]:
    """Node A and node B: same secrets, same store, same database, their own instance dirs."""
    shared = {"store_url": test_redis_url, "database_url": module_database}
    with gateways(tmp_path_factory) as start:
        node_a = start("node-a", shared)
        node_b = start("node-b", shared, keys=node_a.secrets, identities=node_a.identities)
        yield node_a, node_b


def test_a_token_revoked_on_node_a_is_refused_by_every_worker_of_node_b(nodes):
    node_a, node_b = nodes
    token = node_a.caller().login()
    assert call(node_b.url, "GET", "/auth/whoami", headers=bearer(token)).status == 200

    revoked = call(node_a.url, "POST", "/auth/revoke", f"token={token}".encode(),
                   {**bearer(token), "Content-Type": FORM})
    assert revoked.status == 200

    for pid in node_b.worker_pids():
        with node_b.only(pid):
            refused = call(node_b.url, "GET", "/auth/whoami", headers=bearer(token))
        assert (refused.status, refused.slug) == (401, "token-revoked")


def test_an_envelope_accepted_by_node_a_is_a_replay_on_node_b(nodes):
    node_a, node_b = nodes
    caller = node_a.caller()
    token = caller.login()
    body = caller.seal(ROWS)
    accepted = caller.predict(token, body)
    assert accepted.status == 200
    assert caller.open(accepted.body)["model"] == "tiny"

    replayed = caller.predict(token, body, base_url=node_b.url)

    assert (replayed.status, replayed.slug) == (400, "replayed-envelope")


def _traffic_on_both(nodes) -> dict[str, str]:
    """A few audited requests on each node, each with a request id of ours: {id: node url}."""
    sent: dict[str, str] = {}
    caller = nodes[0].caller()
    token = caller.login()
    for node in nodes:
        for _ in range(3):
            request_id = f"ops-{secrets.token_hex(8)}"
            reply = caller.predict(token, caller.seal(ROWS), base_url=node.url,
                                   **{"X-Request-ID": request_id})
            assert reply.status == 200
            sent[request_id] = node.url
    return sent


def test_audit_verify_over_both_nodes_finds_the_trail_intact(nodes):
    node_a, node_b = nodes
    sent = _traffic_on_both(nodes)

    result = node_b.flask("audit", "verify")

    assert result.returncode == 0, result.stderr
    verdict = json.loads(result.stdout)
    assert verdict["intact"] is True
    assert verdict["records"] >= len(sent)
    assert set(sent) <= node_a.audited_request_ids()


def test_audit_verify_over_both_nodes_finds_an_edit_to_node_b_records(nodes):
    node_a, node_b = nodes
    sent = _traffic_on_both(nodes)
    edited = next(rid for rid, url in sent.items() if url == node_b.url)
    engine = sa.create_engine(node_a.database_url)
    update = sa.text("UPDATE audit_records SET status = :status WHERE request_id = :rid")
    try:
        with engine.begin() as conn:
            conn.execute(update, {"status": 403, "rid": edited})
        result = node_a.flask("audit", "verify")
    finally:
        with engine.begin() as conn:
            conn.execute(update, {"status": 200, "rid": edited})
        engine.dispose()

    assert result.returncode == 1
    verdict = json.loads(result.stdout)
    assert verdict["intact"] is False
    assert verdict["reason"] == "record altered or reordered"
