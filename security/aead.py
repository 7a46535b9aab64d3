"""AES-256-GCM, the project's one AEAD: the only place that builds a pycryptodome GCM cipher.

Every caller (payload envelopes, payload-key wrapping, sealed weights and their header) passes
key, nonce and associated data explicitly; a failed tag raises AeadError and nothing else. One
call here is one cipher set-up (pycryptodome's set-up is ~36 µs of every small operation), so a
request pays exactly one per AEAD operation it performs.
"""

from __future__ import annotations

from Crypto.Cipher import AES

TAG_BYTES = 16


class AeadError(ValueError):
    """The ciphertext, tag, nonce, key or associated data do not match: nothing was decrypted."""


def seal(key: bytes, nonce: bytes, plaintext: bytes, aad: bytes = b"") -> tuple[bytes, bytes]:
    """(ciphertext, 16-byte tag) of `plaintext` under key and nonce, authenticating aad."""
    cipher = _cipher(key, nonce, None)
    cipher.update(aad)
    return cipher.encrypt_and_digest(plaintext)


def open_(key: bytes, nonce: bytes, ciphertext: bytes, tag: bytes, aad: bytes = b"") -> bytes:
    """The plaintext of (ciphertext, tag), or AeadError when anything was changed."""
    cipher = _cipher(key, nonce, None)
    cipher.update(aad)
    try:
        return cipher.decrypt_and_verify(ciphertext, tag)
    except ValueError:
        raise AeadError("authentication failed") from None


def seal_into(key: bytes, nonce: bytes, plaintext, output, aad: bytes = b"",
              threads: int | None = None) -> bytes:
    """Encrypt a buffer into `output` (same length) without copies; return the tag."""
    cipher = _cipher(key, nonce, threads)
    cipher.update(aad)
    cipher.encrypt(plaintext, output=output)
    return cipher.digest()


def open_into(key: bytes, nonce: bytes, ciphertext, tag: bytes, output, aad: bytes = b"",
              threads: int | None = None) -> None:
    """Decrypt a buffer into `output` (same length) and verify its tag; AeadError on failure."""
    cipher = _cipher(key, nonce, threads)
    cipher.update(aad)
    try:
        cipher.decrypt_and_verify(ciphertext, tag, output=output)
    except ValueError:
        raise AeadError("authentication failed") from None


def _cipher(key: bytes, nonce: bytes, threads: int | None):
    if threads is None:
        return AES.new(key, AES.MODE_GCM, nonce=nonce, mac_len=TAG_BYTES)
    return AES.new(key, AES.MODE_GCM, nonce=nonce, mac_len=TAG_BYTES, threads=threads)
