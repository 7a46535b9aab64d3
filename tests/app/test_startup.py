"""The start-up line, the text log format, and the level of a shared-store outage."""

from __future__ import annotations

import logging

from app import create_app
from app.requestlog import TextLineFormatter
from errors import StoreUnavailable
from security.signing_keys import secret_kid


def test_start_up_logs_one_line_of_facts_and_no_secret(overrides, caplog, monkeypatch):
    monkeypatch.setenv("TORCHGATE_BIND", "127.0.0.1:8123")
    url = "sqlite:///" + overrides["instance_dir"] + "/gate.db"
    with caplog.at_level(logging.INFO, logger="torchgate.startup"):
        create_app({**overrides, "database_url": url})
    [record] = [r for r in caplog.records if r.name == "torchgate.startup"]
    assert record.startup == {
        "version": record.startup["version"], "env": "testing",
        "models": [{"name": "tiny", "version": "1", "device": "cpu"}],
        "store": "sqlite", "database": "sqlite", "payload_encryption": "required",
        "bind": "127.0.0.1:8123",
        "jwt_keys": {"signing": secret_kid(overrides["jwt_secret"]), "previous": []}}
    message = record.getMessage()
    assert message.startswith("torchgate ") and "models=[tiny/1@cpu]" in message
    assert message.endswith(f" jwt_kid={secret_kid(overrides['jwt_secret'])}")
    for secret in (overrides["jwt_secret"], overrides["master_key"], url):
        assert secret not in message and secret not in str(record.startup)


def test_text_format_is_one_readable_line():
    record = logging.LogRecord("torchgate.access", logging.INFO, __file__, 1, "request", None,
                               None)
    record.status, record.route = 200, "/healthz"
    line = TextLineFormatter().format(record)
    assert line.endswith("INFO    torchgate.access: request route=/healthz status=200")
    assert "{" not in line


def test_log_format_text_applies_to_the_app(overrides):
    create_app({**overrides, "log_format": "text"})
    handler = next(h for h in logging.getLogger().handlers if getattr(h, "torchgate", False))
    assert isinstance(handler.formatter, TextLineFormatter)
    create_app(overrides)
    assert not isinstance(handler.formatter, TextLineFormatter)


def test_a_shared_store_outage_is_logged_at_error(app, gateway, auth, caplog, monkeypatch):
    """docs/operations.md tells operators to alert on ERROR: an outage must reach that level."""
    def unreachable(*args, **kwargs):
        raise StoreUnavailable()
    monkeypatch.setattr(gateway.verifier, "verify_not_revoked", unreachable)
    with caplog.at_level(logging.WARNING):
        answer = app.test_client().get("/auth/whoami", headers=auth.headers())
    assert answer.status_code == 503
    assert [(r.levelname, r.getMessage()) for r in caplog.records if r.levelno >= logging.ERROR
            ] == [("ERROR", "shared store unavailable: request refused with 503")]


def test_start_up_names_the_previous_jwt_key_and_its_window(overrides, caplog):
    previous = "p" * 16 + "0123456789abcdefghij"
    with caplog.at_level(logging.INFO, logger="torchgate.startup"):
        create_app({**overrides, "jwt_previous_secret": previous,
                    "jwt_previous_keys_until": "2030-01-02T03:04:05+01:00"})
    [record] = [r for r in caplog.records if r.name == "torchgate.startup"]
    assert record.startup["jwt_keys"]["previous"] == [
        {"kid": secret_kid(previous), "until": "2030-01-02T02:04:05Z"}]
    assert previous not in str(record.startup) and previous not in record.getMessage()
