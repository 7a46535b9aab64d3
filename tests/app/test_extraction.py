"""The extraction monitor through real requests: a flag's metric, audit record and log line,
and with EXTRACTION_MONITOR=refuse, the refusal; /predict and /v2 alike."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import sqlalchemy as sa

from app import create_app
from config import ConfigError
from security.audit import audit_records
from tests.conftest import SEALED, Auth, Sealer

MONITOR = {"extraction_min_queries": 12, "extraction_threshold": "0.9"}


def synthetic_rows(count: int = 64) -> list[list[float]]:
    """Jacobian-style queries: three seeds, then rounds of x + 0.1 * sign(direction)."""
    rng = np.random.default_rng(0)
    known = rng.uniform(0, 1, (3, 4))
    while len(known) < count:
        known = np.concatenate([known, known + 0.1 * np.sign(rng.normal(size=known.shape))])
    return known[:count].round(4).tolist()


def call(app, rows, subject: str = "mallory", path: str = "/predict/tiny"):
    auth = Auth(app)
    payload = {"inputs": rows} if path.startswith("/predict") else {"inputs": [
        {"name": "x", "shape": [len(rows), 4], "datatype": "FP32", "data": rows}]}
    body = Sealer(*auth.payload_key(subject)).seal(payload)
    return app.test_client().post(path, data=body, content_type=SEALED,
                                  headers=auth.headers(subject))


def flag_records(app) -> list[sa.Row]:
    with app.app_context():
        engine = app.extensions["torchgate"].engine
    with engine.connect() as conn:
        return conn.execute(sa.select(audit_records).where(
            audit_records.c.action == "extraction.flag")).all()


def flags_counted(app) -> str:
    text = app.test_client().get("/metrics").get_data(as_text=True)
    return next((line for line in text.splitlines()
                 if line.startswith("torchgate_extraction_flags_total")), "")


@pytest.mark.parametrize("path", ["/predict/tiny", "/v2/models/tiny/infer"])
def test_a_flag_is_counted_audited_and_logged_without_the_queries(overrides, caplog, path):
    app = create_app({**overrides, **MONITOR, "extraction_monitor": "log"})
    rows = synthetic_rows()
    with caplog.at_level(logging.WARNING, logger="torchgate.extraction"):
        assert call(app, rows, path=path).status_code == 200
        assert call(app, rows[:5], path=path).status_code == 200  # log only: still served
    assert flags_counted(app) == 'torchgate_extraction_flags_total{model="tiny"} 1.0'
    (record,) = flag_records(app)
    assert (record.subject, record.model, record.version, record.decision) == (
        "mallory", "tiny", "1", "allow")
    (line,) = [r for r in caplog.records if r.name == "torchgate.extraction"]
    assert line.getMessage().startswith("extraction monitor flagged a caller: Shapiro-Wilk W")
    assert (line.subject, line.model) == ("mallory", "tiny")
    assert str(rows[5][0]) not in caplog.text


def test_refuse_withholds_the_flagging_reply_and_refuses_later_calls(overrides):
    app = create_app({**overrides, **MONITOR, "extraction_monitor": "refuse"})
    flagging = call(app, synthetic_rows())
    assert flagging.status_code == 403
    assert flagging.json["type"] == "urn:torchgate:problem:forbidden"
    assert flagging.json["detail"] == ("Calls to model 'tiny' by this caller are suspended: its "
                                       "queries look like a model-extraction attempt.")
    later = call(app, [[0.1, 0.2, 0.3, 0.4]], path="/v2/models/tiny/infer")
    assert (later.status_code, later.json["detail"]) == (403, flagging.json["detail"])
    unread = app.test_client().post("/predict/tiny", data=b"not an envelope",
                                    content_type=SEALED, headers=Auth(app).headers("mallory"))
    assert (unread.status_code, unread.json["detail"]) == (403, flagging.json["detail"])
    assert call(app, [[0.1, 0.2, 0.3, 0.4]], subject="alice").status_code == 200
    assert [r.decision for r in flag_records(app)] == ["deny"]


@pytest.mark.parametrize("mode", ["off", "log", "refuse"])
def test_a_caller_below_the_minimum_is_never_judged(overrides, mode):
    app = create_app({**overrides, **MONITOR, "extraction_monitor": mode})
    assert [call(app, [row]).status_code for row in synthetic_rows(12)] == [200] * 12
    assert flag_records(app) == []
    assert flags_counted(app) == ""


def test_with_the_monitor_off_nothing_is_watched(overrides):
    app = create_app({**overrides, **MONITOR})
    assert call(app, synthetic_rows()).status_code == 200
    assert flag_records(app) == []


@pytest.mark.parametrize(("setting", "value", "message"), [
    ("extraction_monitor", "block", "must be one of off, log, refuse"),
    ("extraction_threshold", "high", "expected a number between 0 and 1, e.g. 0.90"),
    ("extraction_threshold", "1.5", "expected a number between 0 and 1, e.g. 0.90"),
    ("extraction_min_queries", "5", "must be at least 12"),
    ("extraction_streams", "0", "must be at least 1"),
])
def test_a_bad_monitor_setting_stops_start_up_naming_it(overrides, setting, value, message):
    with pytest.raises(ConfigError) as raised:
        create_app({**overrides, setting: value})
    assert str(raised.value) == f"TORCHGATE_{setting.upper()}: {message}"
