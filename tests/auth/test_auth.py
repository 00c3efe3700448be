"""Authentication: API keys, JWT/OIDC against a real local issuer (discovery + JWKS on a free port), combined
mode, SSE tickets, throttling. Every forged token must be rejected."""

from __future__ import annotations

import base64
import json
import sqlite3
import threading
import time
from wsgiref.simple_server import WSGIRequestHandler, make_server

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from assay.api import make_app
from assay.auth import AuthConfig, Authenticator, FailureThrottle, JwksCache, JwtVerifier, looks_like_jws
from tests.wsgi import Client

AUD = "assay-test"


class _Quiet(WSGIRequestHandler):
    def log_message(self, *a):  # keep test output clean
        pass


class Issuer:
    """A minimal OIDC issuer: discovery document + JWKS, with RSA and EC signing keys."""

    def __init__(self) -> None:
        # bound here, on a port the OS picks: no window for another process to take it before we listen
        self.server = make_server("127.0.0.1", 0, self.app, handler_class=_Quiet)
        self.port = self.server.server_port
        self.url = f"http://127.0.0.1:{self.port}"
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec = ec.generate_private_key(ec.SECP256R1())
        self.other_rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.jwks_hits = 0
        self.extra_keys: list[dict] = []

    def jwks(self) -> dict:
        rsa_jwk = json.loads(RSAAlgorithm.to_jwk(self.rsa.public_key()))
        rsa_jwk.update(kid="rsa1", use="sig")
        ec_jwk = json.loads(ECAlgorithm.to_jwk(self.ec.public_key()))
        ec_jwk.update(kid="ec1", use="sig")
        return {"keys": [rsa_jwk, ec_jwk, *self.extra_keys]}

    def app(self, environ, start_response):
        path = environ["PATH_INFO"]
        if path == "/.well-known/openid-configuration":
            body = {"issuer": self.url, "jwks_uri": self.url + "/jwks"}
        elif path == "/jwks":
            self.jwks_hits += 1
            body = self.jwks()
        else:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"no"]
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(body).encode()]

    def __enter__(self):
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def token(self, key="rsa", alg=None, kid="default", **claims) -> str:
        now = int(time.time())
        payload = {"iss": self.url, "aud": AUD, "sub": "alice", "exp": now + 300, "iat": now}
        for k, v in claims.items():
            if v is None:
                payload.pop(k, None)
            else:
                payload[k] = v
        priv = {"rsa": self.rsa, "ec": self.ec, "other": self.other_rsa}[key]
        alg = alg or ("ES256" if key == "ec" else "RS256")
        headers = (
            {} if kid is None else {"kid": ("ec1" if key == "ec" else "rsa1") if kid == "default" else kid}
        )
        return jwt.encode(payload, priv, algorithm=alg, headers=headers)


@pytest.fixture(scope="module")
def issuer():
    with Issuer() as iss:
        yield iss


def _client(engine, config: AuthConfig, **kw) -> tuple[Client, Authenticator]:
    auth = Authenticator(engine.store, config, **kw)
    return Client(make_app(engine, auth=auth)), auth


def _get(c: Client, token: str | None, path="/workflows"):
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return c.get(path, headers=headers)


def _b64(obj) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


@pytest.fixture
def jwt_client(engine, issuer):
    c, _ = _client(engine, AuthConfig(issuer=issuer.url, audience=AUD))
    return c


def test_valid_rs256_and_es256_tokens_pass(jwt_client, issuer):
    assert _get(jwt_client, issuer.token("rsa")).status == 200
    assert _get(jwt_client, issuer.token("ec")).status == 200


def test_public_routes_stay_open(jwt_client):
    for path in ("/health", "/version", "/openapi.json", "/docs"):
        assert _get(jwt_client, None, path).status == 200, path
    assert jwt_client.get("/health", prefix="/api/v1/engine/workflow").status == 200


def test_missing_token_is_401_with_www_authenticate(jwt_client):
    r = _get(jwt_client, None)
    assert r.status == 401
    assert r.headers.get("WWW-Authenticate") == "Bearer"
    assert "Bearer" in r.json["error"]


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda i: i.token(exp=int(time.time()) - 3600), id="expired"),
        pytest.param(lambda i: i.token(nbf=int(time.time()) + 3600), id="nbf-in-future"),
        pytest.param(lambda i: i.token(iss="https://evil.example"), id="wrong-iss"),
        pytest.param(lambda i: i.token(iss=None), id="missing-iss"),
        pytest.param(lambda i: i.token(aud="someone-else"), id="wrong-aud"),
        pytest.param(lambda i: i.token(aud=None), id="missing-aud"),
        pytest.param(lambda i: i.token(exp=None), id="missing-exp"),
        pytest.param(lambda i: i.token(iat=int(time.time()) + 3600), id="iat-in-future"),
        pytest.param(lambda i: i.token("other"), id="signed-by-another-key-same-kid"),
        pytest.param(lambda i: i.token(kid="nope"), id="unknown-kid"),
        pytest.param(lambda i: i.token("rsa", kid="ec1"), id="wrong-kid-key-type"),
        pytest.param(lambda i: i.token("rsa", alg="PS256", kid="ec1"), id="alg-mismatch"),
        pytest.param(
            lambda i: (
                _b64({"alg": "none", "typ": "JWT"})
                + "."
                + _b64({"iss": i.url, "aud": AUD, "exp": int(time.time()) + 300})
                + "."
            ),
            id="alg-none",
        ),
        pytest.param(lambda i: _tamper(i.token()), id="tampered-payload"),
        pytest.param(lambda i: "garbage.token.here", id="garbage"),
        pytest.param(lambda i: "not-a-jwt-at-all", id="opaque-string"),
    ],
)
def test_forged_tokens_are_rejected(jwt_client, issuer, make):
    r = _get(jwt_client, make(issuer))
    assert r.status == 401, r.text
    assert "error" in r.json


def _tamper(token: str) -> str:
    h, p, s = token.split(".")
    pad = "=" * (-len(p) % 4)
    claims = json.loads(base64.urlsafe_b64decode(p + pad))
    claims["sub"] = "mallory"
    return f"{h}.{_b64(claims)}.{s}"


def test_hs256_signed_with_public_key_is_rejected(jwt_client, issuer):
    from cryptography.hazmat.primitives import serialization

    pem = issuer.rsa.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = _b64({"alg": "HS256", "typ": "JWT", "kid": "rsa1"})
    body = _b64({"iss": issuer.url, "aud": AUD, "exp": int(time.time()) + 300})
    import hashlib
    import hmac

    sig = base64.urlsafe_b64encode(
        hmac.new(pem, f"{header}.{body}".encode(), hashlib.sha256).digest()
    ).rstrip(b"=")
    r = _get(jwt_client, f"{header}.{body}.{sig.decode()}")
    assert r.status == 401
    assert "not allowed" in r.json["error"]


def test_symmetric_jwk_in_the_set_is_never_used(engine, issuer):
    issuer.extra_keys = [{"kty": "oct", "kid": "sym", "k": _b64({"x": 1})}]
    try:
        c, _ = _client(engine, AuthConfig(issuer=issuer.url, audience=AUD))
        forged = jwt.encode(
            {"iss": issuer.url, "aud": AUD, "exp": int(time.time()) + 60},
            "secret",
            algorithm="HS256",
            headers={"kid": "sym"},
        )
        assert _get(c, forged).status == 401
    finally:
        issuer.extra_keys = []


def test_unknown_kid_refresh_is_rate_limited(engine, issuer, clock):
    cache = JwksCache(issuer.url, ttl=300, refresh_interval=30)
    c, _ = _client(
        engine,
        AuthConfig(issuer=issuer.url, audience=AUD),
        verifier=JwtVerifier(issuer.url, AUD, jwks=cache),
        clock=clock,
    )
    # FakeClock time is far from the token's real-time claims, so use long-lived tokens for this test
    tok = issuer.token(exp=int(clock.now()) + 3600, iat=int(clock.now()))
    assert _get(c, tok).status == 200
    assert cache.fetches == 1
    clock.advance(31)
    for _ in range(5):
        assert (
            _get(c, issuer.token(kid="unknown", exp=int(clock.now()) + 3600, iat=int(clock.now()))).status
            == 401
        )
    assert cache.fetches == 2  # one refresh for the unknown kid, then rate-limited
    clock.advance(31)
    assert (
        _get(c, issuer.token(kid="unknown", exp=int(clock.now()) + 3600, iat=int(clock.now()))).status == 401
    )
    assert cache.fetches == 3


def test_jwks_is_cached_between_requests(engine, issuer):
    cache = JwksCache(issuer.url)
    c, _ = _client(
        engine, AuthConfig(issuer=issuer.url, audience=AUD), verifier=JwtVerifier(issuer.url, AUD, jwks=cache)
    )
    for _ in range(5):
        assert _get(c, issuer.token()).status == 200
    assert cache.fetches == 1


def test_audience_not_required_when_not_configured(engine, issuer):
    c, _ = _client(engine, AuthConfig(issuer=issuer.url))
    assert _get(c, issuer.token(aud=None)).status == 200


# --- API keys -----------------------------------------------------------------------------------


@pytest.fixture
def key_client(engine):
    c, _ = _client(engine, AuthConfig(api_keys=True))
    return c


def test_api_key_lifecycle_and_bootstrap_window(key_client, store, tmp_path):
    # bootstrap: the first key can be minted without a token
    r = key_client.post("/api-keys", {"label": "ci"})
    assert r.status == 201
    key = r.json["plaintext"]
    assert key.startswith("assay_") and len(key) == 6 + 64
    assert r.json["prefix"] == key[:14] + "..."
    # the window closes after the first key
    assert key_client.post("/api-keys", {"label": "second"}).status == 401
    ok = {"Authorization": f"Bearer {key}"}
    assert key_client.get("/workflows", headers=ok).status == 200
    assert key_client.get("/workflows", headers={"Authorization": "Bearer assay_" + "0" * 64}).status == 401
    assert key_client.get("/workflows").status == 401
    listed = key_client.get("/api-keys", headers=ok).json
    assert [k["label"] for k in listed] == ["ci"] and "plaintext" not in listed[0]
    # revoke -> 401
    assert key_client.delete("/api-keys/" + r.json["prefix"], headers=ok).status == 204
    assert key_client.get("/workflows", headers=ok).status == 401


def test_plaintext_never_stored(key_client, store, tmp_path):
    import hashlib

    key = key_client.post("/api-keys", {"label": "x"}).json["plaintext"]
    with store.read() as tx:
        rows = tx.list_api_keys()
    assert [r["key_hash"] for r in rows] == [hashlib.sha256(key.encode()).hexdigest()]
    assert all(key[6:] not in str(v) for r in rows for v in r.values())
    if store.dialect == "sqlite":  # the database file itself never holds the plaintext
        db = tmp_path / "test.db"
        wal = db.with_name("test.db-wal")
        raw = db.read_bytes() + (wal.read_bytes() if wal.exists() else b"")
        assert key.encode() not in raw and key[6:].encode() not in raw
        with sqlite3.connect(db) as conn:
            assert [r[0] for r in conn.execute("SELECT key_hash FROM api_keys")] == [rows[0]["key_hash"]]


def test_ambiguous_prefix_revoke_is_refused(engine, key_client):
    from assay.auth import hash_key

    with engine.store.tx() as tx:
        tx.insert_api_key(hash_key("a"), "assay_deadbeef...", "a", 1.0)
        tx.insert_api_key(hash_key("b"), "assay_deadbeef...", "b", 2.0)
    r = key_client.delete("/api-keys/assay_deadbeef...", headers={"Authorization": "Bearer a"})
    assert r.status == 409
    assert key_client.get("/api-keys", headers={"Authorization": "Bearer a"}).status == 200


def test_jwt_only_mode_has_no_bootstrap_window(engine, issuer):
    c, _ = _client(engine, AuthConfig(issuer=issuer.url, audience=AUD))
    assert c.post("/api-keys", {"label": "x"}).status == 401


def test_combined_mode_routes_tokens(engine, issuer):
    c, _ = _client(engine, AuthConfig(api_keys=True, issuer=issuer.url, audience=AUD))
    key = c.post("/api-keys", {}).json["plaintext"]
    assert not looks_like_jws(key)
    assert _get(c, key).status == 200  # API-key path
    assert _get(c, issuer.token()).status == 200  # JWT path
    bad = _get(c, issuer.token(aud="nope"))  # a failing JWT is not retried as a key
    assert bad.status == 401 and "JWT" in bad.json["error"]


def test_api_key_mode_rejects_jwts(engine, issuer):
    c, _ = _client(engine, AuthConfig(api_keys=True))
    c.post("/api-keys", {})
    r = _get(c, issuer.token())
    assert r.status == 401 and "JWT authentication is not enabled" in r.json["error"]


def test_failure_throttle_returns_429(engine, clock):
    c, _ = _client(
        engine, AuthConfig(api_keys=True), throttle=FailureThrottle(limit=5, window=60), clock=clock
    )
    c.post("/api-keys", {})
    for _ in range(5):
        assert _get(c, "wrong").status == 401
    r = _get(c, "wrong")
    assert r.status == 429 and int(r.headers["Retry-After"]) > 0
    clock.advance(61)
    assert _get(c, "wrong").status == 401


def test_sse_ticket_grants_only_the_stream(engine, clock):
    c, auth = _client(engine, AuthConfig(api_keys=True), clock=clock)
    key = c.post("/api-keys", {}).json["plaintext"]
    assert c.post("/events/ticket").status == 401
    t = c.post("/events/ticket", headers={"Authorization": f"Bearer {key}"})
    assert t.status == 201
    ticket = t.json["ticket"]
    assert auth.tickets.check(ticket, clock.now())
    assert not auth.tickets.check(ticket, clock.now() + 61)  # short-lived
    assert not auth.tickets.check(ticket[:-1] + ("0" if ticket[-1] != "0" else "1"), clock.now())
    # a ticket does not open other routes
    assert c.get("/workflows", query={"ticket": ticket}).status == 401
