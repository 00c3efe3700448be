"""`assay serve` auth flags against real processes: keys minted while the engine runs, list, revoke."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.helpers import assay_cmd, http, start_engine, subprocess_env

pytestmark = pytest.mark.e2e


def _serve(db: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*assay_cmd(), "serve", "--backend", "sqlite:///" + db, *args],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=60,
    )


def test_keys_managed_while_engine_runs(tmp_path):
    db = str(tmp_path / "e.db")
    eng = start_engine(tmp_path, db=db, extra_args=["--auth-api-key"])
    try:
        assert http("GET", eng.api + "/workflows")[0] == 401
        assert http("GET", eng.api + "/health")[0] == 200
        gen = _serve(db, "--generate-api-key", "--label", "ci")
        assert gen.returncode == 0, gen.stderr
        key = gen.stdout.strip()
        assert key.startswith("assay_") and "\n" not in key  # only the key on stdout
        auth = {"Authorization": f"Bearer {key}"}
        assert http("GET", eng.api + "/workflows", headers=auth)[0] == 200
        listed = _serve(db, "--list-api-keys")
        assert listed.returncode == 0 and "ci" in listed.stdout and key[:14] in listed.stdout
        assert key not in listed.stdout
        assert "never" not in listed.stdout.splitlines()[0]  # last used is recorded
        rev = _serve(db, "--revoke-api-key", key[:14])
        assert rev.returncode == 0, rev.stderr
        assert http("GET", eng.api + "/workflows", headers=auth)[0] == 401
        missing = _serve(db, "--revoke-api-key", "assay_00000000")
        assert (
            missing.returncode == 1
            and missing.stderr.startswith("Error:")
            and "Traceback" not in missing.stderr
        )
    finally:
        assert eng.stop() == 0


def test_missing_pyjwt_is_a_startup_error(monkeypatch):
    from assay.auth import JwtVerifier
    from assay.errors import ConfigError

    monkeypatch.setitem(sys.modules, "jwt", None)
    with pytest.raises(ConfigError, match=r"pip install 'assay-workflow\[oidc\]'"):
        JwtVerifier("http://127.0.0.1:1", None)


def test_audience_without_issuer_is_a_usage_error(tmp_path):
    r = _serve(str(tmp_path / "x.db"), "--auth-audience", "x", "--port", "1")
    assert r.returncode == 64 and "--auth-issuer" in r.stderr
