"""Settings are declared once (assay/config.py) and every component reads them through it."""

from __future__ import annotations

import dataclasses
import re

import pytest
from click.testing import CliRunner

from assay import _zipapp
from assay.cli import cli
from assay.cli.serve import serve
from assay.config import (
    CLIENT,
    DASHBOARD,
    SCOPE_CLASSES,
    SCOPES,
    SERVER,
    SETTINGS,
    WORKER,
    ZipappSettings,
    declared,
    load_settings,
)
from assay.dashboard.whitelabel import VARIABLES, Whitelabel
from assay.errors import ConfigError
from tests.helpers import ROOT

ASSAY = ROOT / "assay"


def test_every_field_of_every_scope_is_a_declared_setting():
    for scope in SCOPES:
        cls = SCOPE_CLASSES[scope]
        rows = declared(cls)
        assert [f.name for f in dataclasses.fields(cls)] == list(rows)
        for s in rows.values():
            assert s.scope == scope and s.help and s.env, s
            assert s.type in (int, float, str, bool), s
    envs = [s.env for s in SETTINGS]
    assert len(envs) == len(set(envs)), "a variable is declared twice"
    assert {s.scope for s in SETTINGS} == set(SCOPES)


def test_values_are_parsed_to_the_declared_type_once():
    s = load_settings(
        environ={
            "ASSAY_PORT": "9000",
            "ASSAY_WF_DISPATCH_TIMEOUT_SECS": "2.5",
            "ASSAY_AUTH_API_KEY": "yes",
            "ASSAY_SQLITE_SYNCHRONOUS": "normal",
            "ASSAY_LOG_LEVEL": "WARN",
            "ASSAY_RETENTION_DAYS": "",  # empty = unset
        }
    )
    assert (s.port, s.dispatch_timeout_secs, s.auth_api_key) == (9000, 2.5, True)
    assert type(s.port) is int and type(s.dispatch_timeout_secs) is float
    assert (s.sqlite_synchronous, s.log_level, s.retention_days) == ("NORMAL", "warning", None)
    assert s.backend and s.backend.startswith("sqlite:///")  # the default filled in
    # explicit values (flags) win over the environment
    assert load_settings({"port": 1234}, environ={"ASSAY_PORT": "9000"}).port == 1234


@pytest.mark.parametrize(
    "var,value",
    [
        ("ASSAY_PORT", "eighty"),
        ("ASSAY_LONG_POLL_MAX_SECS", "nan"),
        ("ASSAY_AUTH_API_KEY", "maybe"),
        ("ASSAY_SQLITE_SYNCHRONOUS", "OFF"),
        ("ASSAY_LOG_LEVEL", "loud"),
    ],
)
def test_a_bad_value_is_an_error_naming_the_variable(var, value):
    with pytest.raises(ConfigError) as e:
        load_settings(environ={var: value})
    assert var in e.value.message and repr(value) in e.value.message


def test_unknown_override_is_a_bug_not_a_silent_extra():
    with pytest.raises(TypeError):
        load_settings({"no_such_setting": 1}, environ={})


def test_settings_are_frozen_and_replace_returns_a_copy():
    s = load_settings(environ={})
    t = s.replace(threads=3)
    assert (s.threads, t.threads) == (64, 3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.threads = 2  # type: ignore[misc]


def test_no_casts_or_hand_reads_of_settings_at_use_sites():
    cast = re.compile(r"\b(?:float|int|bool|str)\((?:self\.)?(?:engine\.)?(?:settings|s)\.[a-z_]+\)")
    hand_read = re.compile(r"""environ(?:\.get)?[(\[]\s*["'](?:ASSAY_|DATABASE_URL)""")
    offenders = []
    for path in ASSAY.rglob("*.py"):
        rel = path.relative_to(ROOT).as_posix()
        text = path.read_text(encoding="utf-8")
        if cast.search(text):
            offenders.append(f"{rel}: cast of a setting")
        if rel not in ("assay/config.py",) and hand_read.search(text):
            offenders.append(f"{rel}: reads an ASSAY_* variable by hand")
    for path in (ASSAY / "lua").rglob("*.lua"):
        code = [
            ln for ln in path.read_text(encoding="utf-8").splitlines() if not ln.lstrip().startswith("--")
        ]
        if re.search(r"env\.get\(\s*\"ASSAY_", "\n".join(code)):
            offenders.append(f"{path.relative_to(ROOT)}: reads an ASSAY_* variable by hand")
    assert offenders == []


def test_zipapp_bootstrap_names_match_the_declarations():
    z = declared(ZipappSettings)
    assert _zipapp.CACHE_ENV == z["cache"].env
    assert _zipapp.BYTECODE_ENV == z["bytecode_cache"].env
    for word in _zipapp.OFF_WORDS:
        assert z["bytecode_cache"].parse(word) is False


def test_whitelabel_variables_and_defaults_come_from_the_declarations():
    rows = [s for s in SETTINGS if s.scope == DASHBOARD]
    assert len(rows) == 11
    assert VARIABLES == tuple(s.env.removeprefix("ASSAY_WHITELABEL_") for s in rows)
    default = Whitelabel.from_env({})
    for s in rows:
        if s.name != "mark":
            assert getattr(default, s.name) == s.default
    assert default.mark == "A"
    # empty: literal for the texts that say so, unset for the others
    wl = Whitelabel.from_env(
        {
            "ASSAY_WHITELABEL_NAME": "",
            "ASSAY_WHITELABEL_API_DOCS_URL": "",
            "ASSAY_WHITELABEL_DEFAULT_NAMESPACE": "",
        }
    )
    assert (wl.name, wl.api_docs_url, wl.default_namespace, wl.mark) == ("", "", "main", "A")


def _help(cmd, *args):
    res = CliRunner().invoke(cmd, [*args, "--help"], prog_name="assay", terminal_width=200)
    assert res.exit_code == 0, res.output
    return " ".join(res.output.split())


def test_option_help_is_generated_from_the_declarations():
    serve_help = _help(serve)
    for s in SETTINGS:
        if s.scope == SERVER and s.flag:
            assert f"{s.flag} " in serve_help and f"env {s.env}" in serve_help, s.name
            assert s.help.split(":")[0] in serve_help
    top = _help(cli)
    for s in SETTINGS:
        if s.scope == CLIENT:
            assert s.env in top, s.name
    assert "default http://127.0.0.1:8080" in top and "yaml" in top
    run_help = _help(cli, "run")
    assert next(s.env for s in SETTINGS if s.scope == WORKER and s.name == "debug") in run_help


def test_readme_lists_every_component():
    readme = (ROOT / "README.md").read_text()
    for s in SETTINGS:
        assert f"`{s.env}`" in readme, s.env


def test_python_worker_reads_the_declared_settings(monkeypatch):
    from assay.workflow import process as pyworker
    from assay.workflow.errors import WorkerError

    monkeypatch.setenv("ASSAY_BUILD_ID", "b" * 200)
    assert pyworker.default_build_id() == "b" * 128
    monkeypatch.setenv("ASSAY_WORKER_CONCURRENCY", "lots")
    with pytest.raises(WorkerError) as e:
        pyworker.worker_settings("workflow.listen")
    assert "ASSAY_WORKER_CONCURRENCY" in str(e.value) and "'lots'" in str(e.value)
    monkeypatch.setenv("ASSAY_WORKER_CONCURRENCY", "3")
    assert pyworker.worker_settings("workflow.listen").concurrency == 3
