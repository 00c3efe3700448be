"""Natives for data formats and crypto: json.parse, yaml, base64, crypto."""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import hmac
import json
import secrets
import string
import uuid
from typing import Any

import yaml

from assay.lua.natives import LuaRaise, native, opt_text, raw, text, to_lua

ALNUM = string.ascii_letters + string.digits
HASHES = {
    "md5": "md5",
    "sha1": "sha1",
    "sha224": "sha224",
    "sha256": "sha256",
    "sha384": "sha384",
    "sha512": "sha512",
    "sha3-224": "sha3_224",
    "sha3-256": "sha3_256",
    "sha3-384": "sha3_384",
    "sha3-512": "sha3_512",
    "blake2b": "blake2b",
    "blake2s": "blake2s",
}


def _hash_name(alg: Any) -> str:
    name = (opt_text(alg, "algorithm") or "sha256").lower().replace("_", "-")
    if name not in HASHES:
        raise LuaRaise(f"unsupported algorithm {name!r} (one of {', '.join(HASHES)})")
    return HASHES[name]


def _plain(v: Any) -> Any:
    """YAML values that JSON has no word for (dates, sets, bytes) become strings/lists."""
    if isinstance(v, dict):
        return {str(k) if not isinstance(k, str) else k: _plain(x) for k, x in v.items()}
    if isinstance(v, list | tuple | set):
        return [_plain(x) for x in v]
    if isinstance(v, datetime.date | datetime.datetime | datetime.time):
        return v.isoformat()
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    return v


class DataNatives:
    def __init__(self, lua: Any) -> None:
        self.lua = lua

    # -- json (encode lives in the Lua prelude; it walks tables without crossing into Python) ---
    @native("json.parse")
    def json_parse(self, s: Any = None) -> Any:
        if not isinstance(s, bytes):
            raise LuaRaise(f"expected a string, got {'nil' if s is None else type(s).__name__}")
        try:
            v = json.loads(s)
        except ValueError as e:
            raise LuaRaise(str(e)) from None
        return to_lua(self.lua, v)

    @native("json.pretty")
    def json_pretty(self, s: Any = None) -> bytes:
        return raw(json.dumps(json.loads(s), indent=2, ensure_ascii=False))

    # -- yaml ----------------------------------------------------------------------------------
    @native("yaml.parse")
    def yaml_parse(self, s: Any = None) -> Any:
        try:
            v = yaml.safe_load(text(s, "document"))
        except yaml.YAMLError as e:
            raise LuaRaise(" ".join(str(e).split())) from None
        return to_lua(self.lua, _plain(v))

    @native("yaml.encode")
    def yaml_encode(self, json_text: Any = None) -> bytes:
        v = json.loads(json_text)
        return raw(yaml.safe_dump(v, sort_keys=False, allow_unicode=True, default_flow_style=False))

    # -- base64 --------------------------------------------------------------------------------
    @native("base64.encode")
    def b64_encode(self, s: Any = None) -> bytes:
        return base64.b64encode(raw(text(s, "data")) if not isinstance(s, bytes) else s)

    @native("base64.decode")
    def b64_decode(self, s: Any = None) -> bytes:
        data = raw(text(s, "data")).strip()
        try:
            return base64.b64decode(data + b"=" * (-len(data) % 4), validate=True)
        except (binascii.Error, ValueError) as e:
            raise LuaRaise(f"invalid base64: {e}") from None

    @native("base64.url_encode")
    def b64_url_encode(self, s: Any = None) -> bytes:
        return base64.urlsafe_b64encode(raw(text(s, "data")) if not isinstance(s, bytes) else s).rstrip(b"=")

    @native("base64.url_decode")
    def b64_url_decode(self, s: Any = None) -> bytes:
        data = raw(text(s, "data")).strip()
        try:
            return base64.b64decode(data + b"=" * (-len(data) % 4), altchars=b"-_", validate=True)
        except (binascii.Error, ValueError) as e:
            raise LuaRaise(f"invalid base64: {e}") from None

    # -- crypto --------------------------------------------------------------------------------
    @native("crypto.hash")
    def crypto_hash(self, s: Any = None, alg: Any = None) -> bytes:
        data = s if isinstance(s, bytes) else raw(text(s, "data"))
        return raw(hashlib.new(_hash_name(alg), data).hexdigest())

    @native("crypto.hmac")
    def crypto_hmac(self, key: Any = None, s: Any = None, alg: Any = None, raw_out: Any = None) -> bytes:
        k = key if isinstance(key, bytes) else raw(text(key, "key"))
        data = s if isinstance(s, bytes) else raw(text(s, "data"))
        mac = hmac.new(k, data, _hash_name(alg))
        return mac.digest() if raw_out is True else raw(mac.hexdigest())

    @native("crypto.random")
    def crypto_random(self, n: Any = None) -> bytes:
        size = 32 if n is None else n
        if isinstance(size, bool) or not isinstance(size, int) or size < 0 or size > 1_000_000:
            raise LuaRaise("length must be an integer between 0 and 1000000")
        return raw("".join(secrets.choice(ALNUM) for _ in range(size)))

    @native("crypto.random_bytes")
    def crypto_random_bytes(self, n: Any = None) -> bytes:
        if isinstance(n, bool) or not isinstance(n, int) or n < 0 or n > 1_000_000:
            raise LuaRaise("length must be an integer between 0 and 1000000")
        return secrets.token_bytes(n)

    @native("crypto.uuid")
    def crypto_uuid(self) -> bytes:
        return raw(str(uuid.uuid4()))
