"""PayloadKeyring on SQLite and, when TORCHGATE_TEST_DATABASE_URL is set, on PostgreSQL."""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
import sqlalchemy as sa

from errors import InvalidRequest, KeyNotAllowed
from security.encoding import b64url_decode, b64url_encode
from security.keys import IssuedKey, KeyRecord, PayloadKeyring, payload_keys
from security.schema import metadata

MASTER_KEY = bytes(range(100, 132))
OTHER_MASTER_KEY = bytes(range(1, 33))
T0 = 1_700_000_000.0
DAY = 86_400
PG_URL_ENV = "TORCHGATE_TEST_DATABASE_URL"


@dataclass
class FakeClock:
    """A clock the test moves by hand."""

    now: float = T0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path) -> Iterator[sa.Engine]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'keys.db'}"
    else:
        url = os.environ.get(PG_URL_ENV)
        if not url:
            pytest.skip(f"{PG_URL_ENV} is not set "
                        "(e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test)")
    engine = sa.create_engine(url)
    metadata.create_all(engine, tables=[payload_keys])
    yield engine
    engine.dispose()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def keyring(engine: sa.Engine, clock: FakeClock) -> PayloadKeyring:
    return PayloadKeyring(engine, MASTER_KEY, clock=clock)


@pytest.fixture
def subject() -> str:
    """Unique per test, so parallel runs against one PostgreSQL database never clash."""
    return f"alice-{uuid.uuid4().hex}"


def test_issue_returns_a_256_bit_key(keyring: PayloadKeyring, subject: str) -> None:
    issued = keyring.issue(subject)
    assert len(issued.key) == 32
    assert issued.kid.startswith("pk_") and len(issued.kid) == 19
    assert (issued.subject, issued.expires_at) == (subject, None)


def test_issued_keys_differ(keyring: PayloadKeyring, subject: str) -> None:
    first, second = keyring.issue(subject), keyring.issue(subject)
    assert first.kid != second.kid and first.key != second.key


def test_issued_key_json(keyring: PayloadKeyring, subject: str) -> None:
    issued = keyring.issue(subject, ttl_days=2)
    assert issued.to_json() == {"kid": issued.kid, "key": b64url_encode(issued.key),
                                "subject": subject, "expires_at": "2023-11-16T22:13:20Z"}
    assert b64url_decode(issued.to_json()["key"]) == issued.key


def test_issued_key_repr_hides_the_key() -> None:
    issued = IssuedKey(kid="pk_x", key=b"\x01" * 32, subject="alice", expires_at=None)
    assert "key=" not in repr(issued) and "\\x01" not in repr(issued)


def test_key_is_stored_wrapped(keyring: PayloadKeyring, engine: sa.Engine, subject: str) -> None:
    issued = keyring.issue(subject)
    with engine.connect() as conn:
        wrapped = conn.execute(sa.select(payload_keys.c.wrapped)
                               .where(payload_keys.c.kid == issued.kid)).scalar_one()
    assert len(wrapped) == 12 + 32 + 16
    assert issued.key not in bytes(wrapped)


def test_key_for_returns_the_issued_key(keyring: PayloadKeyring, subject: str) -> None:
    issued = keyring.issue(subject)
    assert keyring.key_for(issued.kid, subject) == issued.key


def test_key_for_from_another_worker(engine: sa.Engine, keyring: PayloadKeyring,
                                     subject: str) -> None:
    issued = keyring.issue(subject)
    assert PayloadKeyring(engine, MASTER_KEY).key_for(issued.kid, subject) == issued.key


def test_list_shows_keys_without_material(keyring: PayloadKeyring, clock: FakeClock,
                                          subject: str) -> None:
    first = keyring.issue(subject)
    clock.now += 5
    second = keyring.issue(subject, ttl_days=1)
    keyring.revoke(first.kid)
    mine = [record for record in keyring.list() if record.subject == subject]
    assert mine == [
        KeyRecord(kid=first.kid, subject=subject, created_at=int(T0), expires_at=None,
                  revoked=True),
        KeyRecord(kid=second.kid, subject=subject, created_at=int(T0) + 5,
                  expires_at=int(T0) + 5 + DAY, revoked=False),
    ]


def test_key_record_json() -> None:
    record = KeyRecord(kid="pk_x", subject="alice", created_at=int(T0), expires_at=None,
                       revoked=False)
    assert record.to_json() == {"kid": "pk_x", "subject": "alice",
                                "created_at": "2023-11-14T22:13:20Z", "expires_at": None,
                                "revoked": False}


def test_revoke_unknown_kid_is_false(keyring: PayloadKeyring) -> None:
    assert keyring.revoke("pk_unknown") is False


def test_revoke_twice_keeps_the_first_time(keyring: PayloadKeyring, engine: sa.Engine,
                                           clock: FakeClock, subject: str) -> None:
    issued = keyring.issue(subject)
    assert keyring.revoke(issued.kid) is True
    clock.now += 60
    assert keyring.revoke(issued.kid) is True
    with engine.connect() as conn:
        revoked_at = conn.execute(sa.select(payload_keys.c.revoked_at)
                                  .where(payload_keys.c.kid == issued.kid)).scalar_one()
    assert revoked_at == int(T0)


def revoked(keyring: PayloadKeyring, clock: FakeClock, issued: IssuedKey) -> str:
    keyring.revoke(issued.kid)
    return issued.kid


def expired(keyring: PayloadKeyring, clock: FakeClock, issued: IssuedKey) -> str:
    clock.now += DAY
    return issued.kid


REFUSALS: list[tuple[str, Callable[[PayloadKeyring, FakeClock, IssuedKey], str], str]] = [
    ("unknown kid", lambda keyring, clock, issued: "pk_unknown", ""),
    ("revoked", revoked, ""),
    ("expired", expired, ""),
    ("other subject", lambda keyring, clock, issued: issued.kid, "-mallory"),
]


@pytest.mark.parametrize(("case", "arrange", "subject_suffix"), REFUSALS,
                         ids=[row[0] for row in REFUSALS])
def test_key_for_refuses(case: str, arrange: Callable[..., str], subject_suffix: str,
                         keyring: PayloadKeyring, clock: FakeClock, subject: str) -> None:
    issued = keyring.issue(subject, ttl_days=1)
    kid = arrange(keyring, clock, issued)
    with pytest.raises(KeyNotAllowed) as caught:
        keyring.key_for(kid, subject + subject_suffix)
    assert caught.value.detail == KeyNotAllowed().detail


def test_key_is_usable_until_the_last_second(keyring: PayloadKeyring, clock: FakeClock,
                                             subject: str) -> None:
    issued = keyring.issue(subject, ttl_days=1)
    clock.now += DAY - 1
    assert keyring.key_for(issued.kid, subject) == issued.key


def test_expiry_is_checked_on_a_cache_hit(keyring: PayloadKeyring, clock: FakeClock,
                                          subject: str) -> None:
    issued = keyring.issue(subject, ttl_days=1)
    clock.now += DAY - 1
    keyring.key_for(issued.kid, subject)
    clock.now += 1
    with pytest.raises(KeyNotAllowed):
        keyring.key_for(issued.kid, subject)


def test_other_subject_is_refused_on_a_cache_hit(keyring: PayloadKeyring, subject: str) -> None:
    issued = keyring.issue(subject)
    keyring.key_for(issued.kid, subject)
    with pytest.raises(KeyNotAllowed):
        keyring.key_for(issued.kid, "mallory")


def test_revocation_elsewhere_is_not_seen_before_cache_ttl(
        engine: sa.Engine, keyring: PayloadKeyring, clock: FakeClock, subject: str) -> None:
    issued = keyring.issue(subject)
    keyring.key_for(issued.kid, subject)
    PayloadKeyring(engine, MASTER_KEY, clock=clock).revoke(issued.kid)
    clock.now += 9.9
    assert keyring.key_for(issued.kid, subject) == issued.key


def test_revocation_elsewhere_is_seen_after_cache_ttl(
        engine: sa.Engine, keyring: PayloadKeyring, clock: FakeClock, subject: str) -> None:
    issued = keyring.issue(subject)
    keyring.key_for(issued.kid, subject)
    PayloadKeyring(engine, MASTER_KEY, clock=clock).revoke(issued.kid)
    clock.now += 10
    with pytest.raises(KeyNotAllowed):
        keyring.key_for(issued.kid, subject)


def test_revocation_on_the_same_worker_is_immediate(keyring: PayloadKeyring,
                                                    subject: str) -> None:
    issued = keyring.issue(subject)
    keyring.key_for(issued.kid, subject)
    keyring.revoke(issued.kid)
    with pytest.raises(KeyNotAllowed):
        keyring.key_for(issued.kid, subject)


def test_wrong_master_key_is_refused_and_logged(
        engine: sa.Engine, keyring: PayloadKeyring, subject: str,
        caplog: pytest.LogCaptureFixture) -> None:
    issued = keyring.issue(subject)
    with caplog.at_level(logging.WARNING, logger="security.keys"), \
            pytest.raises(KeyNotAllowed):
        PayloadKeyring(engine, OTHER_MASTER_KEY).key_for(issued.kid, subject)
    assert issued.kid in caplog.text and "MASTER_KEY" in caplog.text
    for secret in (issued.key, MASTER_KEY, OTHER_MASTER_KEY):
        assert b64url_encode(secret) not in caplog.text and secret.hex() not in caplog.text


def test_key_moved_to_another_subject_is_refused(keyring: PayloadKeyring, engine: sa.Engine,
                                                 subject: str) -> None:
    """The wrapping binds the subject: editing the row does not hand the key to someone else."""
    issued = keyring.issue(subject)
    with engine.begin() as conn:
        conn.execute(payload_keys.update().where(payload_keys.c.kid == issued.kid)
                     .values(subject=subject + "-mallory"))
    with pytest.raises(KeyNotAllowed):
        keyring.key_for(issued.kid, subject + "-mallory")


@pytest.mark.parametrize(("case", "subject", "ttl_days"), [
    ("empty subject", "", None),
    ("long subject", "a" * 256, None),
    ("zero ttl", "alice", 0),
    ("negative ttl", "alice", -1),
    ("bool ttl", "alice", True),
    ("float ttl", "alice", 1.5),
])
def test_issue_refuses_bad_arguments(case: str, subject: str, ttl_days: object,
                                     keyring: PayloadKeyring) -> None:
    with pytest.raises(InvalidRequest):
        keyring.issue(subject, ttl_days)  # type: ignore[arg-type]


@pytest.mark.parametrize("master_key", [b"", bytes(16), bytes(33)])
def test_master_key_must_be_32_bytes(master_key: bytes, tmp_path) -> None:
    with pytest.raises(ValueError, match="MASTER_KEY"):
        PayloadKeyring(sa.create_engine(f"sqlite:///{tmp_path / 'k.db'}"), master_key)


def test_database_errors_propagate(tmp_path) -> None:
    """No table: the driver's error reaches the caller, which answers 503."""
    keyring = PayloadKeyring(sa.create_engine(f"sqlite:///{tmp_path / 'empty.db'}"), MASTER_KEY)
    with pytest.raises(sa.exc.OperationalError):
        keyring.key_for("pk_any", "alice")
