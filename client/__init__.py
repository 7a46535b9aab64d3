"""The torchgate Python client: tokens, sealed predictions, typed errors, retries."""

from client.errors import (
    AuthError,
    Forbidden,
    InvalidEnvelope,
    InvalidInput,
    InvalidReceipt,
    InvalidRequest,
    KeyNotAllowed,
    ModelUnavailable,
    NotFound,
    QuotaExceeded,
    RateLimited,
    ReplayedEnvelope,
    ServerError,
    StaleEnvelope,
    TokenExpired,
    TokenRevoked,
    TorchgateError,
    TransportError,
    Unauthorized,
    Unavailable,
)
from client.sealing import PayloadKey
from client.session import TorchgateClient
from client.tokens import Token
from client.transport import RetryPolicy

__all__ = [
    "AuthError", "Forbidden", "InvalidEnvelope", "InvalidInput", "InvalidReceipt",
    "InvalidRequest", "KeyNotAllowed", "ModelUnavailable", "NotFound", "PayloadKey",
    "QuotaExceeded", "RateLimited",
    "ReplayedEnvelope", "RetryPolicy", "ServerError", "StaleEnvelope", "Token",
    "TokenExpired", "TokenRevoked", "TorchgateClient", "TorchgateError", "TransportError",
    "Unauthorized", "Unavailable",
]
