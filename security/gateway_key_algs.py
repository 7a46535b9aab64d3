"""The gateway's own key algorithms: a 32-byte seed per key, its key object and its public JWK.

Every private key is kept as the seed it derives from, the smallest form each algorithm has:
X-Wing and X25519 (HPKE, `use: "enc"`), Ed25519 and ML-DSA-65 (receipts, `use: "sig"`).

`alg` names follow draft-ietf-jose-hpke-encrypt (HPKE-3: DHKEM(X25519, HKDF-SHA256),
HKDF-SHA256, AES-128-GCM). X-Wing has no registered JOSE name for the suite pycryptodome
implements (KEM 0x647A, HKDF-SHA256, AES-256-GCM): the JOSE post-quantum draft's HPKE-10 pairs
X-Wing with the SHAKE256 KDF (0x0011), which pycryptodome 4.4 lacks, so it is named
`HPKE-XWING-SHA256-A256GCM` rather than claiming a name whose KDF it does not use
(docs/envelope-hpke.md).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from Crypto.Hash import SHAKE256
from Crypto.Protocol import HPKE
from Crypto.Protocol.DH import import_x25519_public_key
from Crypto.PublicKey import ECC, MLDSA, MLKEM, Hybrid

from security.encoding import b64url_decode, b64url_encode

ENC, SIG = "enc", "sig"
XWING = "HPKE-XWING-SHA256-A256GCM"
X25519 = "HPKE-3"
EDDSA = "EdDSA"
MLDSA65 = "ML-DSA-65"
SEED_BYTES = 32
DEFAULT_ALG: Mapping[str, str] = {ENC: XWING, SIG: EDDSA}


@dataclass(frozen=True)
class KeyAlgorithm:
    """One algorithm the gateway holds keys for: how a seed becomes a key, and its JWK."""

    name: str
    use: str
    derive: Callable[[bytes], tuple[Any, bytes]]  # seed -> (private key object, public bytes)
    jwk_members: Callable[[bytes], dict[str, str]]  # public bytes -> kty and key members
    hpke_aead: HPKE.AEAD | None = None


def _xwing(seed: bytes) -> tuple[Any, bytes]:
    """X-Wing's expandDecapsKey by public APIs; HybridKey checks that `pk` matches the seed."""
    expanded = SHAKE256.new(seed).read(96)
    mlkem = MLKEM.construct(param_set=MLKEM.ML_KEM_768, seed=expanded[:64])
    x25519 = ECC.construct(curve="Curve25519", seed=expanded[64:])
    public = mlkem.ek + x25519.public_key().export_key(format="raw")
    return Hybrid.HybridKey(param_set=Hybrid.MLKEM768_X25519, seed=seed, pk=public), public


def _edwards_or_montgomery(curve: str) -> Callable[[bytes], tuple[Any, bytes]]:
    def derive(seed: bytes) -> tuple[Any, bytes]:
        key = ECC.construct(curve=curve, seed=seed)
        return key, key.public_key().export_key(format="raw")
    return derive


def _mldsa65(seed: bytes) -> tuple[Any, bytes]:
    key = MLDSA.construct(param_set=MLDSA.ML_DSA_65, seed=seed)
    return key, key.pk


def _okp(curve: str) -> Callable[[bytes], dict[str, str]]:
    return lambda public: {"kty": "OKP", "crv": curve, "x": b64url_encode(public)}


def _akp(public: bytes) -> dict[str, str]:
    """The "AKP" key type of draft-ietf-cose-dilithium, which the JOSE PQ drafts reuse."""
    return {"kty": "AKP", "pub": b64url_encode(public)}


ALGORITHMS: Mapping[str, KeyAlgorithm] = {a.name: a for a in (
    KeyAlgorithm(XWING, ENC, _xwing, _akp, HPKE.AEAD.AES256_GCM),
    KeyAlgorithm(X25519, ENC, _edwards_or_montgomery("Curve25519"), _okp("X25519"),
                 HPKE.AEAD.AES128_GCM),
    KeyAlgorithm(EDDSA, SIG, _edwards_or_montgomery("Ed25519"), _okp("Ed25519")),
    KeyAlgorithm(MLDSA65, SIG, _mldsa65, _akp),
)}


def algorithm(name: str, use: str) -> KeyAlgorithm:
    """The algorithm `name` for `use`; ValueError naming the choices otherwise."""
    found = ALGORITHMS.get(name)
    if found is None or found.use != use:
        choices = ", ".join(a.name for a in ALGORITHMS.values() if a.use == use)
        raise ValueError(f"unknown {use} algorithm {name!r}: choose {choices}")
    return found


def hpke_public_key(jwk: Mapping[str, Any]) -> tuple[KeyAlgorithm, Any]:
    """(algorithm, pycryptodome public key) of a published enc JWK; ValueError if malformed."""
    alg = algorithm(str(jwk.get("alg")), ENC)
    try:
        if alg.name == X25519:
            if jwk.get("kty") != "OKP" or jwk.get("crv") != "X25519":
                raise ValueError("not an X25519 key")
            return alg, import_x25519_public_key(b64url_decode(str(jwk["x"])))
        if jwk.get("kty") != "AKP":
            raise ValueError("not an AKP key")
        public = b64url_decode(str(jwk["pub"]))
        return alg, Hybrid.HybridKey(param_set=Hybrid.MLKEM768_X25519, pk=public)
    except KeyError as exc:
        raise ValueError(f"the JWK lacks {exc.args[0]!r}") from None
