"""An independent HPKE sender (RFC 9180 base mode) built on pyca/cryptography, for interop tests.

pyca's `hazmat.primitives.hpke.Suite` seals single-shot messages but takes no aad and has no
exporter, both of which torchgate's envelopes need (aad = the protected header; the reply key is
exported). So the KEMs, the key schedule and the exporter are written here from the RFC on
pyca's primitives (X25519, ML-KEM-768, HMAC, HKDF-Expand, SHA3-256, AES-GCM), and
`test_reference_matches_pyca_suite` proves them against pyca's own Suite in both directions.
None of this code is the gateway's: it shares nothing with pycryptodome or security/.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.asymmetric import mlkem, x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

XWING_LABEL = b"\\.//^\\"
# alg -> (kem id, kdf id, aead id, AEAD key length): draft-ietf-jose-hpke-encrypt HPKE-3, and
# torchgate's X-Wing suite (docs/envelope-hpke.md).
SUITES = {"HPKE-3": (0x0020, 0x0001, 0x0001, 16),
          "HPKE-XWING-SHA256-A256GCM": (0x647A, 0x0001, 0x0002, 32)}
REPLY_EXPORT_LABEL = b"torchgate hpke reply v1"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _extract(salt: bytes, label: bytes, ikm: bytes, suite_id: bytes) -> bytes:
    mac = hmac.HMAC(salt or bytes(32), hashes.SHA256())
    mac.update(b"HPKE-v1" + suite_id + label + ikm)
    return mac.finalize()


def _expand(prk: bytes, label: bytes, info: bytes, length: int, suite_id: bytes) -> bytes:
    labeled = length.to_bytes(2, "big") + b"HPKE-v1" + suite_id + label + info
    return HKDFExpand(hashes.SHA256(), length, labeled).derive(prk)


def encapsulate(alg: str, public: bytes) -> tuple[bytes, bytes]:
    """(shared secret, enc) to the recipient public key `public` (SerializePublicKey form)."""
    if alg == "HPKE-3":
        ephemeral = x25519.X25519PrivateKey.generate()
        enc = ephemeral.public_key().public_bytes_raw()
        dh = ephemeral.exchange(x25519.X25519PublicKey.from_public_bytes(public))
        kem_suite = b"KEM" + (0x0020).to_bytes(2, "big")
        prk = _extract(b"", b"eae_prk", dh, kem_suite)
        return _expand(prk, b"shared_secret", enc + public, 32, kem_suite), enc
    ek_m, pk_x = public[:-32], public[-32:]
    ss_m, ct_m = mlkem.MLKEM768PublicKey.from_public_bytes(ek_m).encapsulate()
    ephemeral = x25519.X25519PrivateKey.generate()
    ct_x = ephemeral.public_key().public_bytes_raw()
    ss_x = ephemeral.exchange(x25519.X25519PublicKey.from_public_bytes(pk_x))
    return hashlib.sha3_256(ss_m + ss_x + ct_x + pk_x + XWING_LABEL).digest(), ct_m + ct_x


@dataclass(frozen=True)
class SenderContext:
    """RFC 9180 §5.1 KeySchedule output of the sender, base mode, empty info."""

    suite_id: bytes
    key: bytes
    base_nonce: bytes
    exporter_secret: bytes
    enc: bytes

    def seal(self, plaintext: bytes, aad: bytes) -> bytes:
        return AESGCM(self.key).encrypt(self.base_nonce, plaintext, aad)  # sequence 0

    def export(self, context: bytes, length: int) -> bytes:
        return _expand(self.exporter_secret, b"sec", context, length, self.suite_id)


def setup_sender(alg: str, public: bytes) -> SenderContext:
    kem_id, kdf_id, aead_id, nk = SUITES[alg]
    shared, enc = encapsulate(alg, public)
    suite_id = b"HPKE" + b"".join(i.to_bytes(2, "big") for i in (kem_id, kdf_id, aead_id))
    schedule = (b"\x00" + _extract(b"", b"psk_id_hash", b"", suite_id)
                + _extract(b"", b"info_hash", b"", suite_id))
    secret = _extract(shared, b"secret", b"", suite_id)
    return SenderContext(suite_id=suite_id,
                         key=_expand(secret, b"key", schedule, nk, suite_id),
                         base_nonce=_expand(secret, b"base_nonce", schedule, 12, suite_id),
                         exporter_secret=_expand(secret, b"exp", schedule, 32, suite_id),
                         enc=enc)


def jwk_public_bytes(jwk: dict) -> bytes:
    return unb64(jwk["x"] if jwk["kty"] == "OKP" else jwk["pub"])


def seal_request(plaintext: bytes, jwk: dict, header: dict) -> tuple[bytes, bytes]:
    """(flattened JWE body, reply key) per draft-ietf-jose-hpke-encrypt Integrated Encryption."""
    context = setup_sender(jwk["alg"], jwk_public_bytes(jwk))
    protected = b64(json.dumps(header).encode())
    ciphertext = context.seal(plaintext, protected.encode("ascii"))
    body = json.dumps({"protected": protected, "encrypted_key": b64(context.enc),
                       "ciphertext": b64(ciphertext)}).encode()
    return body, context.export(REPLY_EXPORT_LABEL, 32)


def open_reply(body: bytes, reply_key: bytes, request: bytes) -> dict:
    """The plaintext JSON of a dir/A256GCM reply, checked to answer `request`."""
    members = json.loads(body)
    header = json.loads(unb64(members["protected"]))
    assert header["alg"] == "dir" and header["enc"] == "A256GCM"
    assert header["typ"] == "torchgate-reply+jwe"
    assert header["req_sha256"] == hashlib.sha256(request).hexdigest()
    ciphertext = unb64(members["ciphertext"]) + unb64(members["tag"])
    plaintext = AESGCM(reply_key).decrypt(unb64(members["iv"]), ciphertext,
                                          members["protected"].encode("ascii"))
    return json.loads(plaintext)


def ath(token: str) -> str:
    return b64(hashlib.sha256(token.encode("ascii")).digest())
