"""The JWT verification keys, current and previous, read from the settings once at start-up.

A bad value stops start-up with one line naming the setting, as every other secret does.
"""

from __future__ import annotations

from typing import Any

from config import ConfigError, Settings, require_strong_text
from security.signing_keys import (
    SigningKey,
    algorithm_of,
    current_key,
    load_public_key,
    parse_until,
    public_key_kid,
    secret_kid,
)

UNTIL = "JWT_PREVIOUS_KEYS_UNTIL"


def verification_key(settings: Settings) -> Any:
    """What verifies tokens signed now: the HS256 secret or JWT_PUBLIC_KEY."""
    if settings.jwt_algorithm == "HS256":
        return settings.jwt_secret
    return load_public_key(settings.jwt_public_key)


def previous_signing_keys(settings: Settings) -> list[SigningKey]:
    """JWT_PREVIOUS_SECRET and JWT_PREVIOUS_PUBLIC_KEY, each verifying until the window ends."""
    secret, pem = settings.jwt_previous_secret, settings.jwt_previous_public_key
    if not secret and not pem:
        if settings.jwt_previous_keys_until:  # checked all the same: a typo must not wait
            window_end(settings.jwt_previous_keys_until)
        return []
    until = window_end(settings.jwt_previous_keys_until)
    current_kid = current_key(settings.jwt_algorithm, verification_key(settings)).kid
    keys = []
    if secret:
        require_strong_text("JWT_PREVIOUS_SECRET", secret)
        keys.append(not_current("JWT_PREVIOUS_SECRET", current_kid,
                                SigningKey(secret_kid(secret), "HS256", secret, until)))
    if pem:
        keys.append(not_current("JWT_PREVIOUS_PUBLIC_KEY", current_kid,
                                previous_public_key(pem, until)))
    return keys


def not_current(name: str, current_kid: str, key: SigningKey) -> SigningKey:
    if key.kid == current_kid:
        raise ConfigError(name, "is the current signing key: set it to the one before")
    return key


def window_end(text: str) -> float:
    if not text:
        raise ConfigError(UNTIL, "required with a previous JWT key: the time it stops "
                          "verifying, e.g. 2026-12-01T12:00:00Z")
    try:
        return parse_until(text)
    except ValueError as exc:
        raise ConfigError(UNTIL, f"not an ISO-8601 time with a zone: {text!r} "
                          "(e.g. 2026-12-01T12:00:00Z)") from exc


def previous_public_key(pem: str, until: float) -> SigningKey:
    try:
        public_key = load_public_key(pem)
        algorithm = algorithm_of(public_key)
    except (ValueError, TypeError) as exc:
        raise ConfigError("JWT_PREVIOUS_PUBLIC_KEY", "not a PEM RSA, P-256 or Ed25519 public "
                          "key") from exc
    return SigningKey(public_key_kid(public_key), algorithm, public_key, until)
