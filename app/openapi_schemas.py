"""JSON Schemas (OpenAPI 3.1 components) of the gateway's bodies: auth, models, envelope."""

from __future__ import annotations

from typing import Any

from models.manifest import DTYPES

Schema = dict[str, Any]

B64URL_PATTERN = "^[A-Za-z0-9_-]*$"
OAUTH_ERRORS = ("invalid_request", "invalid_grant", "unsupported_grant_type", "invalid_client")


def ref(name: str) -> Schema:
    """A reference to a schema of components.schemas."""
    return {"$ref": f"#/components/schemas/{name}"}


def _string(description: str, **extra: Any) -> Schema:
    return {"type": "string", "description": description, **extra}


def _object(properties: Schema, required: tuple[str, ...] = (), **extra: Any) -> Schema:
    return {"type": "object", "required": list(required), "properties": properties, **extra}


RECEIPT: Schema = _string("The gateway's signed receipt, a compact JWS; always the reply's last "
                          "member (docs/receipts.md)",
                          pattern=r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$")


def _b64url(description: str, **extra: Any) -> Schema:
    return _string(description, pattern=B64URL_PATTERN, contentEncoding="base64url", **extra)


def _grant(grant_type: str, description: str, properties: Schema,
           required: tuple[str, ...]) -> Schema:
    return _object({"grant_type": {"const": grant_type}, **properties},
                   ("grant_type", *required), description=description,
                   additionalProperties={"type": "string"})


def auth_schemas() -> dict[str, Schema]:
    """/auth/*: the three grants (RFC 6749), the token reply, its errors, revoke, whoami."""
    nonempty = {"type": "string", "minLength": 1}
    return {
        "PasswordGrant": _grant("password", "Resource owner password credentials (RFC 6749 §4.3).",
                                {"username": nonempty, "password": nonempty},
                                ("username", "password")),
        "ClientCredentialsGrant": _grant(
            "client_credentials",
            "Client credentials (RFC 6749 §4.4): client_id and client_secret here or in HTTP "
            "Basic, never both.", {"client_id": nonempty, "client_secret": nonempty}, ()),
        "RefreshTokenGrant": _grant(
            "refresh_token", "Refresh (RFC 6749 §6): rotates the refresh token; presenting a used "
            "one again revokes its whole family.", {"refresh_token": nonempty},
            ("refresh_token",)),
        "TokenRequest": {"oneOf": [ref("PasswordGrant"), ref("ClientCredentialsGrant"),
                                   ref("RefreshTokenGrant")],
                         "discriminator": {"propertyName": "grant_type"}},
        "TokenResponse": _object({
            "access_token": _string("A signed JWT access token."),
            "token_type": {"const": "Bearer"},
            "expires_in": {"type": "integer", "minimum": 1,
                           "description": "Seconds the access token is valid."},
            "refresh_token": _string("Only for the password and refresh_token grants."),
        }, ("access_token", "token_type", "expires_in"), additionalProperties=False),
        "OAuthError": _object({
            "error": {"enum": list(OAUTH_ERRORS)},
            "error_description": _string("Human-readable; never echoes a credential."),
        }, ("error",), description="RFC 6749 §5.2 error response."),
        "RevokeRequest": _object({
            "token": _string("The access or refresh token to revoke (RFC 7009).", minLength=1),
            "token_type_hint": _string("access_token or refresh_token; optional, and ignored: "
                                       "every kind of token is searched (RFC 7009 §2.1)."),
        }, ("token",), additionalProperties={"type": "string"}),
        "Whoami": _object({
            "sub": _string("The caller's subject."),
            "roles": {"type": "array", "items": {"type": "string"}},
            "permissions": {"type": "array", "items": {"type": "string"},
                            "description": "What the roles grant, from the roles file."},
            "exp": {"type": "integer", "description": "Token expiry, Unix seconds."},
        }, ("sub", "roles", "permissions", "exp"), additionalProperties=False),
    }


def model_schemas() -> dict[str, Schema]:
    """/models: what a caller may see of each served model."""
    return {
        "TensorSpec": _object({
            "name": {"type": "string"},
            "shape": {"type": "array", "items": {"type": "integer", "minimum": -1},
                      "description": "-1 means any size."},
            "dtype": {"enum": list(DTYPES)},
        }, ("name", "shape", "dtype"), additionalProperties=False),
        "Model": _object({
            "name": {"type": "string"},
            "versions": {"type": "array", "items": {"type": "string", "pattern": "^[0-9]+$"}},
            "default_version": {"type": ["string", "null"]},
            "inputs": {"type": "array", "items": ref("TensorSpec")},
            "outputs": {"type": "array", "items": ref("TensorSpec")},
            "device": _string("Where the model runs, e.g. cpu or cuda:0."),
            "ready": {"type": "boolean", "description": "The default version is loaded."},
            "output_policy": {"anyOf": [ref("OutputPolicy"), {"type": "null"}],
                              "description": "In /models: the policy of this caller's replies "
                                             "(null when the manifest cannot be read)."},
        }, ("name", "versions", "default_version", "inputs", "outputs", "device", "ready"),
            additionalProperties=False),
        "OutputPolicy": _object({
            "mode": {"enum": ["scores", "top_k", "labels"]},
            "top_k": {"type": ["integer", "null"], "minimum": 1},
            "decimals": {"type": ["integer", "null"], "minimum": 0},
            "noise": {"type": ["number", "null"], "exclusiveMinimum": 0,
                      "description": "Scale of the Laplace noise added to every score."},
        }, ("mode", "top_k", "decimals", "noise"), additionalProperties=False,
            description="What this caller's replies carry (docs/models.md, [output])."),
        "ModelList": _object({"models": {"type": "array", "items": ref("Model")}},
                             ("models",), additionalProperties=False),
    }


def envelope_schemas() -> dict[str, Schema]:
    """The JWE flattened envelope (RFC 7516) that carries every sealed body, and its header."""
    return {
        "EnvelopeHeader": _object({
            "alg": {"const": "dir"},
            "enc": {"const": "A256GCM"},
            "kid": _string("The payload key id, issued to the token's subject.", minLength=1),
            "iat": {"type": "integer", "minimum": 0,
                    "description": "Unix seconds; at most ENVELOPE_MAX_AGE from the server clock."},
            "cty": {"type": "string"},
        }, ("alg", "enc", "kid", "iat"),
            description="The protected header; zip and crit are refused."),
        "Envelope": _object({
            "protected": _b64url("base64url(JSON EnvelopeHeader); its ASCII is the AAD.",
                                 minLength=1, contentMediaType="application/json",
                                 contentSchema=ref("EnvelopeHeader")),
            "iv": _b64url("12 random bytes, never reused with one key.", minLength=16,
                          maxLength=16),
            "ciphertext": _b64url("AES-256-GCM ciphertext of the JSON plaintext."),
            "tag": _b64url("16-byte GCM tag.", minLength=22, maxLength=22),
            "aad": _b64url("Optional extra authenticated data."),
            "encrypted_key": {"const": "", "description": "Tolerated only empty (alg dir)."},
            "header": {"type": "object", "maxProperties": 0},
            "unprotected": {"type": "object", "maxProperties": 0},
        }, ("protected", "iv", "ciphertext", "tag"), additionalProperties=False,
            description="JWE Flattened JSON Serialization, alg dir + enc A256GCM."),
        **hpke_envelope_schemas(),
    }


def hpke_envelope_schemas() -> dict[str, Schema]:
    """A request sealed to the gateway's published key (docs/envelope-hpke.md)."""
    return {
        "HpkeEnvelopeHeader": _object({
            "alg": {"enum": ["HPKE-XWING-SHA256-A256GCM", "HPKE-3"]},
            "kid": _string("An enc key of /.well-known/jwks.json.", minLength=1),
            "iat": {"type": "integer", "minimum": 0,
                    "description": "Unix seconds; at most ENVELOPE_MAX_AGE from the server clock."},
            "ath": _b64url("base64url SHA-256 of the bearer token sent with it."),
            "typ": {"const": "torchgate-request+jwe"},
            "cty": {"type": "string"},
        }, ("alg", "kid", "iat", "ath"),
            description="The protected header; enc, ek, psk_id, zip and crit are refused."),
        "HpkeEnvelope": _object({
            "protected": _b64url("base64url(JSON HpkeEnvelopeHeader); its ASCII is the HPKE aad.",
                                 minLength=1, contentMediaType="application/json",
                                 contentSchema=ref("HpkeEnvelopeHeader")),
            "encrypted_key": _b64url("The HPKE encapsulated key.", minLength=1),
            "ciphertext": _b64url("HPKE ciphertext of the JSON plaintext, tag included."),
            "aad": _b64url("Optional extra authenticated data."),
            "iv": {"const": ""}, "tag": {"const": ""},
            "header": {"type": "object", "maxProperties": 0},
            "unprotected": {"type": "object", "maxProperties": 0},
        }, ("protected", "encrypted_key", "ciphertext"), additionalProperties=False,
            description="draft-ietf-jose-hpke-encrypt Integrated Encryption, flattened JSON."),
    }


def _nested(leaf: Schema, name: str, description: str) -> Schema:
    return {"type": "array", "minItems": 1, "description": description,
            "items": {"anyOf": [leaf, ref(name)]}}


def predict_schemas() -> dict[str, Schema]:
    """The plaintext of a sealed predict request and reply (plain JSON in optional mode)."""
    number = {"type": ["number", "boolean"]}
    output = {"anyOf": [{"type": ["number", "boolean"]},
                        {"enum": ["NaN", "Infinity", "-Infinity"]}]}
    return {
        "Tensor": _nested(number, "Tensor", "A nested list of numbers (or booleans), not ragged."),
        "OutputTensor": _nested(output, "OutputTensor",
                                "A nested list; non-finite floats are the strings NaN, Infinity, "
                                "-Infinity (as ProtoJSON writes them)."),
        "LabelTensor": _nested({"type": "string"}, "LabelTensor", "Top label per row."),
        "PredictRequest": _object({
            "inputs": {"oneOf": [ref("Tensor"), {
                "type": "object", "minProperties": 1, "additionalProperties": ref("Tensor"),
                "description": "Named inputs: one entry per declared input."}]},
            "parameters": {"type": "object", "maxProperties": 0,
                           "description": "Reserved for model parameters: the served models "
                                          "take none, so only {} is accepted (else 422)."},
        }, ("inputs",), additionalProperties=False,
            description="The plaintext of a sealed request (§5 of the contract)."),
        "PredictReply": _object({
            "model": {"type": "string"},
            "version": {"type": "string"},
            "outputs": {"oneOf": [ref("OutputTensor"), {
                "type": "object", "additionalProperties": ref("OutputTensor"),
                "description": "Named outputs, for a request with named inputs."}]},
            "indices": {"oneOf": [ref("OutputTensor"), {
                "type": "object", "additionalProperties": ref("OutputTensor")}],
                "description": "Under a top_k output policy: the class index of each score."},
            "labels": {"anyOf": [{"type": "string"}, ref("LabelTensor")],
                       "description": "When the model declares labels."},
            "request_id": {"type": "string"},
            "receipt": RECEIPT,
        }, ("model", "version", "outputs", "request_id", "receipt"), additionalProperties=False,
            description="The plaintext of a sealed reply."),
    }


def health_schemas() -> dict[str, Schema]:
    """Probe bodies."""
    return {
        "Health": _object({"status": {"const": "ok"}}, ("status",), additionalProperties=False),
        "Jwks": _object({"keys": {"type": "array", "items": _object({
            "kty": {"enum": ["OKP", "AKP"]}, "kid": {"type": "string"},
            "use": {"enum": ["enc", "sig"]}, "alg": {"type": "string"},
            "crv": {"type": "string"}, "x": _b64url("OKP public key."),
            "pub": _b64url("AKP public key."),
            "exp": {"type": "integer", "description": "Retired: unusable from this time."},
        }, ("kty", "kid", "use", "alg"), additionalProperties=False)}}, ("keys",),
            additionalProperties=False),
        "Ready": _object({"status": {"const": "ready"},
                          "models": {"type": "array", "items": {"type": "string"}}},
                         ("status", "models"), additionalProperties=False),
    }
