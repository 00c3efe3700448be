"""Authentication: API keys (SHA-256 at rest, constant-time compare), JWT/OIDC (JWKS cached), combined mode,
short-lived SSE stream tickets, and a per-IP failure throttle.

Modes: no auth (default) | API keys | JWT | both (a token that parses as a JWS goes the JWT path, anything
else the API-key path). Health, version, openapi.json and docs are public; everything else is gated.
"""

from __future__ import annotations

import base64
import collections
import hashlib
import hmac
import json
import logging
import secrets
import threading
import time
import urllib.request
from dataclasses import dataclass
from typing import Any

from assay.errors import ConfigError, Conflict, NotFound, TooManyRequests, Unauthorized
from assay.store.base import Record, Store

log = logging.getLogger("assay.auth")

# --- API keys --------------------------------------------------------------------------------------


def hash_key(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode("utf-8")).hexdigest()


def key_prefix(plaintext: str) -> str:
    body = plaintext[len("assay_") :] if plaintext.startswith("assay_") else plaintext
    return "assay_" + body[:8] + "..."


def mint_api_key(store: Store, label: str | None, now: float) -> dict[str, Any]:
    plaintext = "assay_" + secrets.token_hex(32)
    prefix = key_prefix(plaintext)
    with store.tx() as tx:
        tx.insert_api_key(hash_key(plaintext), prefix, label, now)
    return {"plaintext": plaintext, "prefix": prefix, "label": label, "created_at": now}


def public_key(rec: Record) -> dict[str, Any]:
    return {
        "prefix": rec["prefix"],
        "label": rec["label"],
        "created_at": rec["created_at"],
        "last_used_at": rec.get("last_used_at"),
    }


def list_api_keys(store: Store) -> list[dict[str, Any]]:
    with store.read() as tx:
        return [public_key(r) for r in tx.list_api_keys()]


def find_by_label(store: Store, label: str) -> Record | None:
    with store.read() as tx:
        for r in tx.list_api_keys():
            if r["label"] == label:
                return r
    return None


def revoke_api_key(store: Store, prefix: str) -> dict[str, Any]:
    """Delete the one key with this display prefix (with or without the trailing '...')."""
    shown = prefix if prefix.endswith("...") else prefix + "..."
    with store.tx() as tx:
        matches = tx.api_keys_by_prefix(shown)
        if not matches:
            raise NotFound(f"not found: api key {prefix}")
        if len(matches) > 1:
            raise Conflict(f"prefix {prefix} matches {len(matches)} keys; refusing to revoke more than one")
        tx.delete_api_key(matches[0]["key_hash"])
        return public_key(matches[0])


def verify_api_key(store: Store, token: str, now: float) -> bool:
    digest = hash_key(token)
    with store.read() as tx:
        rec = tx.find_api_key(digest)
    if rec is None or not hmac.compare_digest(rec["key_hash"], digest):
        return False
    if rec.get("last_used_at") is None or now - rec["last_used_at"] > 60:
        with store.tx() as tx:
            tx.touch_api_key(digest, now)
    return True


# --- JWT / OIDC -------------------------------------------------------------------------------------

ASYMMETRIC_ALGS = {
    "RSA": {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"},
    "EC": {"ES256", "ES384", "ES512"},
    "OKP": {"EdDSA"},
}
EC_CURVE_ALG = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}
ALL_ALGS = set().union(*ASYMMETRIC_ALGS.values())


def _b64url_json(segment: str) -> Any:
    pad = "=" * (-len(segment) % 4)
    return json.loads(base64.urlsafe_b64decode(segment + pad))


def looks_like_jws(token: str) -> bool:
    """Three dot-separated segments whose first decodes to a JSON header naming an algorithm (not none)."""
    parts = token.split(".")
    if len(parts) != 3:
        return False
    try:
        header = _b64url_json(parts[0])
    except (ValueError, UnicodeDecodeError, TypeError):
        return False
    alg = header.get("alg") if isinstance(header, dict) else None
    return isinstance(alg, str) and alg.lower() != "none"


class JwksCache:
    """Fetches discovery -> jwks_uri -> JWKS; caches for `ttl`; refreshes for an unknown kid at most once
    per `refresh_interval` seconds."""

    def __init__(
        self, issuer: str, ttl: float = 300.0, refresh_interval: float = 30.0, timeout: float = 10.0
    ) -> None:
        self.issuer = issuer.rstrip("/")
        self.ttl = ttl
        self.refresh_interval = refresh_interval
        self.timeout = timeout
        self._keys: list[dict[str, Any]] = []
        self._fetched_at = 0.0
        self._last_attempt = -1e18
        self._lock = threading.Lock()
        self.fetches = 0

    def _get_json(self, url: str) -> Any:
        req = urllib.request.Request(url, headers={"Accept": "application/json"})
        with urllib.request.urlopen(req, timeout=self.timeout) as r:  # noqa: S310 - issuer URL is operator config
            return json.loads(r.read())

    def _fetch(self, now: float) -> None:
        self._last_attempt = now
        self.fetches += 1
        conf = self._get_json(self.issuer + "/.well-known/openid-configuration")
        uri = conf.get("jwks_uri") if isinstance(conf, dict) else None
        if not isinstance(uri, str):
            raise ValueError("discovery document has no jwks_uri")
        jwks = self._get_json(uri)
        keys = jwks.get("keys") if isinstance(jwks, dict) else None
        if not isinstance(keys, list):
            raise ValueError("JWKS has no keys array")
        self._keys = [k for k in keys if isinstance(k, dict)]
        self._fetched_at = now

    def keys(self, now: float, want_kid: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            stale = now - self._fetched_at > self.ttl
            missing = want_kid is not None and not any(k.get("kid") == want_kid for k in self._keys)
            may_refresh = now - self._last_attempt >= self.refresh_interval
            if (stale or missing) and (may_refresh or not self._keys):
                try:
                    self._fetch(now)
                except Exception as e:
                    log.warning("JWKS fetch from %s failed: %s", self.issuer, e)
            return list(self._keys)


def _alg_allowed_for_key(alg: str, jwk: dict[str, Any]) -> bool:
    kty = jwk.get("kty")
    if alg not in ASYMMETRIC_ALGS.get(kty, set()):
        return False
    if kty == "EC" and EC_CURVE_ALG.get(jwk.get("crv")) != alg:
        return False
    if jwk.get("alg") and jwk["alg"] != alg:
        return False
    return jwk.get("use") in (None, "sig")


class JwtVerifier:
    def __init__(
        self, issuer: str, audience: str | None, jwks: JwksCache | None = None, leeway: float = 60.0
    ):
        try:
            import jwt  # noqa: F401
        except ImportError:
            raise ConfigError(
                "--auth-issuer needs PyJWT: install the extra with  pip install 'assay-workflow[oidc]'"
            ) from None
        self.issuer = issuer
        self.audience = audience
        self.jwks = jwks or JwksCache(issuer)
        self.leeway = leeway

    def verify(self, token: str, now: float | None = None) -> dict[str, Any]:
        import jwt

        now = time.time() if now is None else now
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as e:
            raise Unauthorized(f"JWT validation failed: malformed token ({e})") from None
        alg = header.get("alg")
        if alg not in ALL_ALGS:
            raise Unauthorized(f"JWT validation failed: algorithm {alg!r} is not allowed")
        kid = header.get("kid")
        keys = self.jwks.keys(now, kid)
        if kid is not None:
            cands = [k for k in keys if k.get("kid") == kid]
            if not cands:
                raise Unauthorized("JWT validation failed: key not found")
        else:
            cands = [k for k in keys if _alg_allowed_for_key(alg, k)]
            if len(cands) != 1:
                raise Unauthorized("JWT validation failed: token has no kid and no single matching key")
        jwk = cands[0]
        if not _alg_allowed_for_key(alg, jwk):
            raise Unauthorized(f"JWT validation failed: algorithm {alg} does not match the key")
        try:
            key = jwt.PyJWK(jwk, algorithm=alg).key
        except jwt.PyJWTError as e:
            raise Unauthorized(f"JWT validation failed: unusable key ({e})") from None
        require = ["exp", "iss"] + (["aud"] if self.audience else [])
        try:
            # time claims are checked below against the injected clock, not PyJWT's wall clock
            claims = jwt.decode(
                token,
                key=key,
                algorithms=[alg],
                issuer=self.issuer,
                audience=self.audience,
                options={
                    "require": require,
                    "verify_aud": bool(self.audience),
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                },
            )
        except jwt.PyJWTError as e:
            raise Unauthorized(f"JWT validation failed: {type(e).__name__}: {e}") from None
        for name in ("exp", "nbf", "iat"):
            v = claims.get(name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
                raise Unauthorized(f"JWT validation failed: claim {name} is not a number")
        if claims["exp"] <= now - self.leeway:
            raise Unauthorized("JWT validation failed: token has expired")
        if claims.get("nbf") is not None and claims["nbf"] > now + self.leeway:
            raise Unauthorized("JWT validation failed: token is not valid yet (nbf)")
        if claims.get("iat") is not None and claims["iat"] > now + self.leeway:
            raise Unauthorized("JWT validation failed: token issued in the future (iat)")
        return claims


# --- SSE stream tickets ------------------------------------------------------------------------------


class TicketSigner:
    """Short-lived signed tickets so EventSource (which cannot set headers) never carries a long-lived key."""

    def __init__(self, secret: bytes | None = None, ttl: float = 60.0) -> None:
        self.secret = secret or secrets.token_bytes(32)
        self.ttl = ttl

    def issue(self, now: float) -> dict[str, Any]:
        exp = int(now + self.ttl)
        nonce = secrets.token_hex(8)
        msg = f"{exp}.{nonce}"
        sig = hmac.new(self.secret, msg.encode(), hashlib.sha256).hexdigest()
        return {"ticket": f"{msg}.{sig}", "expires_at": exp}

    def check(self, ticket: str, now: float) -> bool:
        try:
            exp_s, nonce, sig = ticket.split(".")
            exp = int(exp_s)
        except ValueError:
            return False
        want = hmac.new(self.secret, f"{exp_s}.{nonce}".encode(), hashlib.sha256).hexdigest()
        return hmac.compare_digest(want, sig) and now <= exp


# --- the gate ----------------------------------------------------------------------------------------


class FailureThrottle:
    def __init__(self, limit: int = 20, window: float = 60.0) -> None:
        self.limit = limit
        self.window = window
        self._fails: dict[str, collections.deque[float]] = {}
        self._lock = threading.Lock()

    def _trim(self, q: collections.deque[float], now: float) -> None:
        while q and q[0] <= now - self.window:
            q.popleft()

    def blocked(self, ip: str, now: float) -> float:
        """Seconds until `ip` may try again (0 if not blocked)."""
        with self._lock:
            q = self._fails.get(ip)
            if not q:
                return 0.0
            self._trim(q, now)
            return (q[0] + self.window - now) if len(q) >= self.limit else 0.0

    def fail(self, ip: str, now: float) -> None:
        with self._lock:
            q = self._fails.setdefault(ip, collections.deque())
            self._trim(q, now)
            q.append(now)
            if len(self._fails) > 10_000:  # bound memory under a spray of addresses
                for k in list(self._fails)[:5000]:
                    del self._fails[k]


@dataclass
class AuthConfig:
    api_keys: bool = False
    issuer: str | None = None
    audience: str | None = None

    @property
    def enabled(self) -> bool:
        return self.api_keys or bool(self.issuer)

    def describe(self) -> str:
        parts = []
        if self.issuer:
            parts.append(f"jwt (issuer: {self.issuer})")
        if self.api_keys:
            parts.append("api-key")
        return " + ".join(parts) if parts else "no-auth (open access)"


class Authenticator:
    """The request gate. `guard(spec)` is called by the router before every non-public handler."""

    def __init__(
        self,
        store: Store,
        config: AuthConfig,
        *,
        verifier: JwtVerifier | None = None,
        tickets: TicketSigner | None = None,
        throttle: FailureThrottle | None = None,
        clock=None,
    ) -> None:
        self.store = store
        self.config = config
        self.verifier = verifier or (JwtVerifier(config.issuer, config.audience) if config.issuer else None)
        self.tickets = tickets or TicketSigner()
        self.throttle = throttle or FailureThrottle()
        self.now = clock.now if clock is not None else time.time

    def guard(self, spec: Any) -> None:
        import bottle

        if not self.config.enabled:
            return
        req = bottle.request
        ip = req.environ.get("REMOTE_ADDR", "?")
        now = self.now()
        if spec.auth == "bootstrap" and self.config.api_keys:
            with self.store.read() as tx:
                if tx.count_api_keys() == 0:
                    return
        if spec.stream and req.query.get("ticket"):
            if self.tickets.check(req.query.get("ticket", ""), now):
                return
            self._fail(ip, now, "invalid or expired stream ticket")
        wait = self.throttle.blocked(ip, now)
        if wait > 0:
            raise TooManyRequests(
                "too many failed authentication attempts; retry later", retry_after=int(wait) + 1
            )
        header = req.headers.get("Authorization", "")
        if not header.startswith("Bearer ") or not header[7:].strip():
            self._fail(ip, now, "Missing Authorization: Bearer <token>")
        token = header[7:].strip()
        if looks_like_jws(token):
            if self.verifier is None:
                self._fail(ip, now, "JWT authentication is not enabled on this server")
            try:
                self.verifier.verify(token, now)  # type: ignore[union-attr]
                return
            except Unauthorized as e:
                self._fail(ip, now, e.message)
        if not self.config.api_keys:
            self._fail(ip, now, "Token is not a valid JWT and API-key authentication is not enabled")
        if not verify_api_key(self.store, token, now):
            self._fail(ip, now, "Invalid API key")

    def may_call_out(self, authorization: str) -> bool:
        """Could checking this Authorization header wait on another server (the issuer's JWKS)? Such a
        request is never run on the connection loop's thread."""
        if self.verifier is None or not self.config.enabled:
            return False
        return looks_like_jws(authorization[7:].strip()) if authorization.startswith("Bearer ") else False

    def _fail(self, ip: str, now: float, reason: str) -> None:
        self.throttle.fail(ip, now)
        log.warning("authentication failed from %s: %s", ip, reason)
        raise Unauthorized(reason)


def register_routes(router: Any, auth: Authenticator | None, clock_now) -> None:
    """POST /events/ticket: a short-lived ticket for the SSE stream (gated like any API call)."""
    from assay.api.http import RouteSpec, json_response, read_body

    signer = auth.tickets if auth is not None else TicketSigner()

    def ticket() -> str:
        read_body(router.max_body)  # no fields, but an oversized body is still refused (413)
        return json_response(signer.issue(clock_now()), 201)

    router.add(
        RouteSpec(
            method="POST",
            path="/events/ticket",
            handler=ticket,
            tag="events",
            summary="Issue a 60-second ticket for GET /events/stream?ticket=...",
            body="Empty",
            responses={201: "StreamTicket", 401: "Error"},
        )
    )
