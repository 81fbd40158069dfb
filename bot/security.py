"""The webhook's front door: decrypt, check the token, the signature and the timestamp
window — before anything is parsed into our models or stored.

Feishu's scheme (platform.md §1.4–1.6): AES-256-CBC with key = SHA-256(Encrypt Key), IV
prefixed, PKCS#7; signature = hex(SHA-256(timestamp + nonce + encrypt_key + raw body)), not
HMAC. lark-oapi's own handler answers 500 on a bad signature, compares with `!=` and has no
timestamp window, so we verify ourselves (a test checks our sealing against its decryptor).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from dataclasses import dataclass
from functools import lru_cache
from datetime import datetime
from typing import Any, Mapping

from Crypto.Cipher import AES

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
def _block_decryptor(encrypt_key: str):
    """AES-256 block decryption (ECB is stateless, so one object serves every request);
    CBC is applied below. Saves building a cipher per request on the webhook's ack path."""
    return AES.new(_aes_key(encrypt_key), AES.MODE_ECB)


def decrypt(encrypted_b64: str, encrypt_key: str) -> bytes:
    try:
        raw = base64.b64decode(encrypted_b64, validate=True)
    except (ValueError, TypeError) as exc:
        raise Malformed("bad base64") from exc
    if len(raw) < 32 or len(raw) % 16:
        raise Malformed("bad ciphertext length")
    # CBC: P_i = D(C_i) XOR C_{i-1}, with C_0 the IV (the first 16 bytes).
    blocks = _block_decryptor(encrypt_key).decrypt(raw[16:])
    mask = int.from_bytes(raw[:-16], "big")
    plain = (int.from_bytes(blocks, "big") ^ mask).to_bytes(len(blocks), "big")
    pad = plain[-1]
    if not 1 <= pad <= 16 or plain[-pad:] != bytes([pad]) * pad:
        raise Malformed("bad padding")
    return plain[:-pad]


def encrypt(plaintext: bytes, encrypt_key: str, iv: bytes | None = None) -> str:
    """What Feishu does to an event; used by tests, the sandbox and benchmarks."""
    iv = iv or os.urandom(16)
    pad = 16 - len(plaintext) % 16
    data = plaintext + bytes([pad]) * pad
    return base64.b64encode(iv + AES.new(_aes_key(encrypt_key), AES.MODE_CBC, iv).encrypt(data)).decode()


def signature(timestamp: str, nonce: str, encrypt_key: str, body: bytes) -> str:
    return hashlib.sha256((timestamp + nonce + encrypt_key).encode("utf-8") + body).hexdigest()


def seal(payload: dict[str, Any], *, encrypt_key: str, timestamp: int, nonce: str | None = None
         ) -> tuple[bytes, dict[str, str]]:
    """Encrypt and sign a payload exactly as Feishu delivers it: (raw body, headers)."""
    body = json.dumps({"encrypt": encrypt(json.dumps(payload, ensure_ascii=False).encode(), encrypt_key)}
                      ).encode()
    ts, nonce = str(timestamp), nonce or os.urandom(8).hex()
    return body, {
        "Content-Type": "application/json",
        "X-Lark-Request-Timestamp": ts,
        "X-Lark-Request-Nonce": nonce,
        "X-Lark-Signature": signature(ts, nonce, encrypt_key, body),
    }


def _loads(data: bytes) -> dict[str, Any]:
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Malformed("not JSON") from exc
    if not isinstance(obj, dict):
        raise Malformed("not an object")
    return obj


def _token_of(payload: dict[str, Any]) -> str:
    header = payload.get("header")
    if isinstance(header, dict) and isinstance(header.get("token"), str):
        return header["token"]
    tok = payload.get("token")
    return tok if isinstance(tok, str) else ""


def open_envelope(raw_body: bytes, headers: Mapping[str, str], *, encrypt_key: str,
                  verification_token: str, clock: Clock, window_seconds: int = 300) -> Opened:
    """Verify a webhook request and return its plaintext payload.

    Order matters: the signature covers the raw bytes, so it is checked before we trust
    anything; url_verification is the one request Feishu sends unsigned.
    """
    outer = _loads(raw_body)
    if encrypt_key:
        if "encrypt" not in outer or not isinstance(outer["encrypt"], str):
            raise Rejected("plaintext body while an Encrypt Key is configured")
        try:
            plain = decrypt(outer["encrypt"], encrypt_key)
        except Malformed:
            # Undecryptable: either garbage or encrypted with another key. Without a valid
            # signature we cannot tell, so the signature decides 401 vs 400.
            _check_signature(raw_body, headers, encrypt_key, clock, window_seconds)
            raise
        payload = _loads(plain)
    else:
        payload = outer

    if not hmac.compare_digest(_token_of(payload).encode(), verification_token.encode()):
        raise Rejected("verification token mismatch")

    if payload.get("type") == "url_verification":
        challenge = payload.get("challenge")
        if not isinstance(challenge, str):
            raise Malformed("challenge missing")
        return Opened(payload=payload, challenge=challenge)

    if encrypt_key:
        _check_signature(raw_body, headers, encrypt_key, clock, window_seconds)
    return Opened(payload=payload)


def _check_signature(raw_body: bytes, headers: Mapping[str, str], encrypt_key: str, clock: Clock,
                     window_seconds: int) -> None:
    ts = headers.get("x-lark-request-timestamp") or headers.get("X-Lark-Request-Timestamp") or ""
    nonce = headers.get("x-lark-request-nonce") or headers.get("X-Lark-Request-Nonce") or ""
    sig = headers.get("x-lark-signature") or headers.get("X-Lark-Signature") or ""
    if not (ts and nonce and sig):
        raise Rejected("signature headers missing")
    expected = signature(ts, nonce, encrypt_key, raw_body)
    if not hmac.compare_digest(expected.encode(), sig.encode()):
        raise Rejected("bad signature")
    try:
        sent = int(ts)
    except ValueError as exc:
        raise Rejected("bad timestamp") from exc
    if abs(clock.now().timestamp() - sent) > window_seconds:
        raise Rejected("timestamp outside the window")


def now_ts(clock: Clock) -> int:
    return int(clock.now().timestamp())


__all__ = ["Opened", "Rejected", "Malformed", "open_envelope", "seal", "encrypt", "decrypt",
           "signature", "now_ts", "datetime"]
