"""The webhook's front door: the signature over the raw bytes and the timestamp window first,
then decrypt and check the Verification Token — before anything is parsed into our models.

Feishu's scheme (platform.md §1.4–1.6): AES-256-CBC with key = SHA-256(Encrypt Key), IV
prefixed, PKCS#7; signature = hex(SHA-256(timestamp + nonce + encrypt_key + raw body)), not
HMAC. lark-oapi's own handler answers 500 on a bad signature, compares with `!=` and has no
timestamp window, so we verify ourselves (a test checks our sealing against its decryptor).

AES comes from `cryptography` (OpenSSL through Rust bindings), not pycryptodome: pycryptodome calls
its C code through ctypes, which releases the GIL on every call, so on the event loop's thread each
decrypt could wait for a worker thread's switch interval to get the GIL back (measured with two busy
threads: mean 14–23 µs, p99 115–155 µs a decrypt, against 6 µs and 36–42 µs for `cryptography`,
which keeps the GIL for so short a call).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, Mapping

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from bot import jsonsafe
from bot.clock import Clock


class Rejected(Exception):
    """The request is not from Feishu (or too old): answer 401 and store nothing."""


class Malformed(Exception):
    """The request is authentic-looking but not a payload we can read: answer 400."""


@dataclass(frozen=True)
class Opened:
    payload: dict[str, Any]
    challenge: str | None = None  # set for url_verification


def _aes_key(encrypt_key: str) -> bytes:
    return hashlib.sha256(encrypt_key.encode("utf-8")).digest()


@lru_cache(maxsize=8)
def _algorithm(encrypt_key: str) -> algorithms.AES:
    """The key schedule's input, derived once per Encrypt Key (not per request)."""
    return algorithms.AES(_aes_key(encrypt_key))


def decrypt(encrypted_b64: str, encrypt_key: str) -> bytes:
    try:
        raw = base64.b64decode(encrypted_b64, validate=True)
    except (ValueError, TypeError) as exc:
        raise Malformed("bad base64") from exc
    if len(raw) < 32 or len(raw) % 16:
        raise Malformed("bad ciphertext length")
    plain, pad_ok = _unpad(_cbc_decrypt(raw, encrypt_key))
    if not pad_ok:
        raise Malformed("bad padding")
    return plain


def _cbc_decrypt(raw: bytes, encrypt_key: str) -> bytes:
    """AES-256-CBC with the IV in the first 16 bytes; the padding is left on (checked by `_unpad`)."""
    decryptor = Cipher(_algorithm(encrypt_key), modes.CBC(raw[:16])).decryptor()
    return decryptor.update(raw[16:]) + decryptor.finalize()


def _unpad(plain: bytes) -> tuple[bytes, bool]:
    """Strip PKCS#7 padding: (plaintext, whether the padding was valid), with the same comparison
    whether or not the last byte is a padding length (no timing difference to learn from)."""
    pad = plain[-1]
    in_range = 1 <= pad <= 16
    width = pad if in_range else 16
    pad_ok = hmac.compare_digest(plain[-width:], bytes([width]) * width) and in_range
    return plain[:len(plain) - (pad if pad_ok else 0)], pad_ok


def encrypt(plaintext: bytes, encrypt_key: str, iv: bytes | None = None) -> str:
    """What Feishu does to an event; used by tests, the sandbox and benchmarks."""
    iv = iv or os.urandom(16)
    pad = 16 - len(plaintext) % 16
    data = plaintext + bytes([pad]) * pad
    encryptor = Cipher(_algorithm(encrypt_key), modes.CBC(iv)).encryptor()
    return base64.b64encode(iv + encryptor.update(data) + encryptor.finalize()).decode()


def signature(timestamp: str, nonce: str, encrypt_key: str, body: bytes) -> str:
    # Header values arrive as latin-1 text; "replace" keeps a hostile one from raising.
    return hashlib.sha256((timestamp + nonce + encrypt_key).encode("utf-8", "replace") + body).hexdigest()


def seal(payload: dict[str, Any], *, encrypt_key: str, timestamp: int, nonce: str | None = None
         ) -> tuple[bytes, dict[str, str]]:
    """Encrypt and sign a payload exactly as Feishu delivers it: (raw body, headers)."""
    try:
        plain = json.dumps(payload, ensure_ascii=False).encode()
    except UnicodeEncodeError:  # a lone surrogate: Feishu would send it as a \u escape
        plain = json.dumps(payload).encode()
    body = json.dumps({"encrypt": encrypt(plain, encrypt_key)}).encode()
    ts, nonce = str(timestamp), nonce or os.urandom(8).hex()
    return body, {
        "Content-Type": "application/json",
        "X-Lark-Request-Timestamp": ts,
        "X-Lark-Request-Nonce": nonce,
        "X-Lark-Signature": signature(ts, nonce, encrypt_key, body),
    }


def _loads(data: bytes) -> dict[str, Any]:
    try:
        obj = jsonsafe.loads(data)
    except jsonsafe.Unreadable as exc:
        raise Malformed(str(exc)) from exc
    if not isinstance(obj, dict):
        raise Malformed("not an object")
    return obj


def _token_of(payload: dict[str, Any]) -> str:
    header = payload.get("header")
    if isinstance(header, dict) and isinstance(header.get("token"), str):
        return header["token"]
    tok = payload.get("token")
    return tok if isinstance(tok, str) else ""


def _header(headers: Mapping[str, str], name: str) -> str:
    return headers.get(name.lower()) or headers.get(name) or ""


def open_envelope(raw_body: bytes, headers: Mapping[str, str], *, encrypt_key: str,
                  verification_token: str, clock: Clock, window_seconds: int = 300) -> Opened:
    """Verify a webhook request and return its plaintext payload.

    With an Encrypt Key, nothing is decrypted or parsed before the signature over the raw bytes
    holds, and every failure before that is the same Rejected: an unsigned request can teach an
    attacker nothing about a ciphertext (no padding oracle). The one request Feishu sends
    unsigned, url_verification, has its own path that fails just as uniformly.
    """
    if not encrypt_key:
        payload = _loads(raw_body)  # plaintext mode: nothing secret to leak, the token decides
        _check_token(payload, verification_token)
        return _opened(payload)
    if not any(_header(headers, h) for h in _SIGNATURE_HEADERS):
        return _open_unsigned_challenge(raw_body, encrypt_key, verification_token)
    _check_signature(raw_body, headers, encrypt_key, clock, window_seconds)
    # Authentic from here on: what cannot be read is a 400 (Feishu's or our bug), not a forgery.
    outer = _loads(raw_body)
    if not isinstance(outer.get("encrypt"), str):
        raise Rejected("plaintext body while an Encrypt Key is configured")  # S4
    payload = _loads(decrypt(outer["encrypt"], encrypt_key))
    _check_token(payload, verification_token)
    return _opened(payload)


_SIGNATURE_HEADERS = ("X-Lark-Request-Timestamp", "X-Lark-Request-Nonce", "X-Lark-Signature")
_CHALLENGE_KEYS = frozenset({"challenge", "token", "type"})
MAX_CHALLENGE_BYTES = 2048  # a real challenge body is ~200 bytes


def _open_unsigned_challenge(raw_body: bytes, encrypt_key: str, verification_token: str) -> Opened:
    """Accept an unsigned request only if it is exactly a url_verification with our token.

    Every way of failing — not JSON, bad base64, bad padding, not JSON inside, wrong shape,
    wrong token — raises the same Rejected after the same steps, so neither the answer nor its
    timing says whether the padding was valid."""
    ok = len(raw_body) <= MAX_CHALLENGE_BYTES
    payload: Any = None
    try:
        outer = _loads(raw_body) if ok else {}
        sealed = outer.get("encrypt")
        plain, pad_ok = _decrypt_uniform(sealed if isinstance(sealed, str) and ok else "", encrypt_key)
        try:
            payload = jsonsafe.loads(plain)
        except jsonsafe.Unreadable:
            payload = None
        ok = ok and pad_ok
    except Malformed:
        ok = False
    shaped = (isinstance(payload, dict) and set(payload) == _CHALLENGE_KEYS
              and payload.get("type") == "url_verification" and isinstance(payload.get("challenge"), str)
              and isinstance(payload.get("token"), str))
    token = payload["token"] if shaped else ""
    token_ok = hmac.compare_digest(token.encode(), verification_token.encode())
    if not (ok and shaped and token_ok):
        raise Rejected("unsigned request that is not our url_verification")
    return Opened(payload=payload, challenge=payload["challenge"])


def _decrypt_uniform(encrypted_b64: str, encrypt_key: str) -> tuple[bytes, bool]:
    """Decrypt without branching on the padding: (plaintext, whether it was well formed)."""
    try:
        raw = base64.b64decode(encrypted_b64, validate=True)
    except (ValueError, TypeError):
        raw = b""
    shaped = len(raw) >= 32 and len(raw) % 16 == 0
    plain, pad_ok = _unpad(_cbc_decrypt(raw if shaped else bytes(32), encrypt_key))
    return plain, shaped and pad_ok


def _check_token(payload: dict[str, Any], verification_token: str) -> None:
    if not hmac.compare_digest(_token_of(payload).encode(), verification_token.encode()):
        raise Rejected("verification token mismatch")


def _opened(payload: dict[str, Any]) -> Opened:
    if payload.get("type") == "url_verification":
        challenge = payload.get("challenge")
        if not isinstance(challenge, str):
            raise Malformed("challenge missing")
        return Opened(payload=payload, challenge=challenge)
    return Opened(payload=payload)


MAX_TIMESTAMP_DIGITS = 12  # seconds since 1970 until the year 33658


def _check_signature(raw_body: bytes, headers: Mapping[str, str], encrypt_key: str, clock: Clock,
                     window_seconds: int) -> None:
    ts, nonce, sig = (_header(headers, h) for h in _SIGNATURE_HEADERS)
    if not (ts and nonce and sig):
        raise Rejected("signature headers missing")
    expected = signature(ts, nonce, encrypt_key, raw_body)
    if not hmac.compare_digest(expected.encode(), sig.encode("utf-8", "replace")):
        raise Rejected("bad signature")
    if not (ts.isascii() and ts.isdigit() and len(ts) <= MAX_TIMESTAMP_DIGITS):
        raise Rejected("bad timestamp")
    if abs(clock.now().timestamp() - int(ts)) > window_seconds:
        raise Rejected("timestamp outside the window")


def now_ts(clock: Clock) -> int:
    return int(clock.now().timestamp())


__all__ = ["Opened", "Rejected", "Malformed", "open_envelope", "seal", "encrypt", "decrypt",
           "signature", "now_ts", "datetime"]
