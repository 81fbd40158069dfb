"""Does the answer to an unsigned request take longer when its padding is valid? (S1)

A padding oracle needs some difference between a ciphertext whose padding is valid and one whose
padding is not. The answers are identical (tests/test_front_door.py); this measures the time.
It takes one captured encrypted push, forges the two kinds of variants an attacker would send
(last byte of the second-to-last block flipped so the padding is valid, or not), and times
`open_envelope` on each, interleaved, many times. It prints the medians and the difference
against the spread of each kind.

    python -m bench.bench_padding_timing [--rounds 20000]
"""
from __future__ import annotations

import argparse
import base64
import json
import statistics
import time
from datetime import datetime, timezone

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from bot.clock import ManualClock
from bot.security import Rejected, _aes_key, open_envelope, seal
from feishu_fake import events as ev

KEY, TOKEN = "bench-encrypt-key", "bench-token"


def _variants() -> tuple[bytes, bytes]:
    payload = ev.message_event(chat_id="oc_x", sender_open_id="ou_x", text="/帮助 " + "内容" * 40, app_id="cli_x",
                               tenant_key="t", token=TOKEN, create_ms=0)
    raw = base64.b64decode(json.loads(seal(payload, encrypt_key=KEY, timestamp=0)[0])["encrypt"])
    # the last block through the bare block cipher: which guess gives which last plaintext byte
    block = Cipher(algorithms.AES(_aes_key(KEY)), modes.ECB()).decryptor().update(raw[-16:])
    valid = invalid = None
    for guess in range(256):
        forged = bytearray(raw)
        forged[-17] = guess
        plain_last = block[-1] ^ guess
        body = json.dumps({"encrypt": base64.b64encode(bytes(forged)).decode()}).encode()
        if plain_last == 1 and valid is None:
            valid = body           # padding 0x01: valid
        elif plain_last > 16 and invalid is None:
            invalid = body         # not a padding byte at all
    assert valid and invalid
    return valid, invalid


def _time(body: bytes, clock: ManualClock) -> float:
    start = time.perf_counter_ns()
    try:
        open_envelope(body, {}, encrypt_key=KEY, verification_token=TOKEN, clock=clock)
    except Rejected:
        pass
    return time.perf_counter_ns() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20000)
    args = parser.parse_args()
    clock = ManualClock(datetime(2026, 12, 1, tzinfo=timezone.utc))
    valid, invalid = _variants()
    for body in (valid, invalid) * 500:  # warm up
        _time(body, clock)
    t_valid, t_invalid = [], []
    for _ in range(args.rounds):
        t_valid.append(_time(valid, clock))
        t_invalid.append(_time(invalid, clock))
    mv, mi = statistics.median(t_valid), statistics.median(t_invalid)
    iqr = lambda xs: statistics.quantiles(xs, n=4)[2] - statistics.quantiles(xs, n=4)[0]  # noqa: E731
    print(f"rounds per kind: {args.rounds}")
    print(f"valid padding:   median {mv / 1000:.2f} µs, IQR {iqr(t_valid) / 1000:.2f} µs")
    print(f"invalid padding: median {mi / 1000:.2f} µs, IQR {iqr(t_invalid) / 1000:.2f} µs")
    print(f"difference of medians: {(mv - mi) / 1000:+.2f} µs "
          f"({abs(mv - mi) / max(iqr(t_valid), 1):.2f} × the valid kind's IQR)")


if __name__ == "__main__":
    main()
