"""Strict JSON for input from outside: bounded nesting, finite numbers, and strings the
database can store.

`json.loads` alone accepts `Infinity`, nests until RecursionError, and turns `\\u0000` or a lone
`\\ud800` into characters PostgreSQL refuses. Those escapes are the only way such characters get
into a JSON text (raw NUL bytes and invalid UTF-8 are already syntax errors), so a cheap scan of
the raw text decides whether the slower walk is needed at all.
"""
from __future__ import annotations

import json
import math
import re
from typing import Any

MAX_DEPTH = 32
MAX_INT_DIGITS = 20  # ids, versions and timestamps fit; anything longer is not ours
REPLACEMENT = "\ufffd"

_BAD_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89abcdefABCDEF])")
_BAD_CHARS = re.compile("[\x00\ud800-\udfff]")


class Unreadable(ValueError):
    """Not JSON we accept: syntax, nesting, numbers."""


def _reject_constant(name: str) -> Any:
    raise Unreadable(f"{name} is not a number we accept")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise Unreadable("number out of range")
    return value


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise Unreadable("number out of range")
    return int(text)


# Built once: `json.loads` with hooks builds a decoder (and its scanner) on every call, about a
# third of the parse of a webhook body.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float, parse_int=_bounded_int)


def _text(data: bytes | str) -> str:
    """Bytes decoded as json.loads decodes them (UTF-8, -16 or -32; surrogates let through)."""
    if isinstance(data, str):
        return data
    if not isinstance(data, (bytes, bytearray)):
        raise TypeError(f"not JSON text: {type(data).__name__}")
    return data.decode(json.detect_encoding(data), "surrogatepass")


def loads(data: bytes | str) -> Any:
    """Parse JSON; NUL and lone surrogates in strings (and keys) become U+FFFD."""
    try:
        obj = _DECODER.decode(_text(data))
    except Unreadable:
        raise
    except (ValueError, RecursionError, UnicodeDecodeError, TypeError) as exc:
        raise Unreadable("not JSON") from exc
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    needs_scrub = _BAD_ESCAPE.search(raw) is not None
    if needs_scrub or raw.count(b"[") + raw.count(b"{") > MAX_DEPTH:
        obj = _walk(obj, 0)
    return obj


def _clean(value: str) -> str:
    return _BAD_CHARS.sub(REPLACEMENT, value)


def _walk(node: Any, depth: int) -> Any:
    if isinstance(node, str):
        return _clean(node)
    if isinstance(node, (dict, list)):
        if depth >= MAX_DEPTH:
            raise Unreadable("nested too deeply")
        if isinstance(node, dict):
            return {_clean(k): _walk(v, depth + 1) for k, v in node.items()}
        return [_walk(v, depth + 1) for v in node]
    return node
