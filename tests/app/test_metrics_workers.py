"""/metrics under gunicorn: every worker's samples summed, the directory kept clean."""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.app.test_metrics import Samples, parse, requests_total, value
from tests.ops.client import call
from tests.ops.gateway import launch

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def gunicorn(tmp_path_factory):
    """gunicorn.conf.py with 2 workers on 127.0.0.1; a stale sample file left in its metrics dir."""
    root = tmp_path_factory.mktemp("gunicorn")
    (root / "metrics").mkdir()
    (root / "metrics" / "counter_999999.db").write_bytes(b"left by an earlier run")
    gateway = launch(root, {}, workers=2)
    try:
        yield gateway
    finally:
        gateway.stop()


def scrape_server(gateway) -> Samples:
    reply = call(gateway.url, "GET", "/metrics")
    assert reply.status == 200
    return parse(reply.body.decode())


def test_gunicorn_starts_with_an_empty_metrics_dir(gunicorn):
    assert not (gunicorn.root / "metrics" / "counter_999999.db").exists()
    assert value(scrape_server(gunicorn), "torchgate_model_ready", model="tiny", version="1") == 1


def test_gunicorn_metrics_sum_every_worker_whichever_answers(gunicorn):
    before = requests_total(scrape_server(gunicorn), "unmatched", 404)
    workers = gunicorn.worker_pids()
    for pid, count in zip(workers, (3, 4), strict=True):
        with gunicorn.only(pid):
            replies = [call(gunicorn.url, "GET", "/no/such/page") for _ in range(count)]
        assert [r.status for r in replies] == [404] * count
    for pid in workers:
        with gunicorn.only(pid):
            assert requests_total(scrape_server(gunicorn), "unmatched", 404) == before + 7


def test_a_dead_workers_counts_stay_and_its_live_gauges_go(gunicorn):
    assert call(gunicorn.url, "GET", "/no/such/page").status == 404
    before = scrape_server(gunicorn)
    metrics_dir = gunicorn.root / "metrics"
    victim = next(pid for pid in gunicorn.worker_pids()
                  if (metrics_dir / f"gauge_livesum_{pid}.db").exists())
    live_files = [metrics_dir / f"gauge_{mode}_{victim}.db"
                  for mode in ("livesum", "livemin", "livemax")]
    assert all(f.exists() for f in live_files)
    os.kill(victim, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (
            any(f.exists() for f in live_files) or len(gunicorn.worker_pids()) < 2
            or victim in gunicorn.worker_pids()):
        time.sleep(0.1)
    assert not any(f.exists() for f in live_files)
    after = scrape_server(gunicorn)
    assert (requests_total(after, "unmatched", 404)
            == requests_total(before, "unmatched", 404) > 0)
    assert value(after, "torchgate_http_requests_in_flight") == 1  # the scrape itself


def test_without_a_metrics_dir_gunicorn_uses_a_private_one_and_removes_it(tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    gateway = launch(tmp_path / "gw", {}, workers=2,
                     server_env={"PROMETHEUS_MULTIPROC_DIR": "", "TMPDIR": str(tmp)})
    try:
        for pid in gateway.worker_pids():
            with gateway.only(pid):
                assert call(gateway.url, "GET", "/no/such/page").status == 404
        (private,) = tmp.glob("torchgate-metrics-*")
        writers = {int(f.stem.rpartition("_")[2]) for f in private.glob("counter_*.db")}
        assert writers == set(gateway.worker_pids())
        assert requests_total(scrape_server(gateway), "unmatched", 404) == 2
    finally:
        gateway.stop()
    assert list(tmp.glob("torchgate-metrics-*")) == []
