"""Global options anywhere, precedence end to end, one-line errors and exit codes (in-process)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from assay import __version__
from assay.cli import cli
from tests.cli.test_sdk import closed_port


def invoke(*args, input=None, env=None):
    return CliRunner().invoke(
        cli, list(args), input=input, env=env, prog_name="assay", catch_exceptions=False
    )


def one_error_line(res, code):
    assert res.exit_code == code, (res.exit_code, res.stdout, res.stderr)
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), res.stderr
    assert "Traceback" not in res.stderr + res.stdout
    return lines[0]


@pytest.mark.parametrize(
    "argv",
    [
        ["--output", "table", "workflow", "list"],
        ["workflow", "--output", "table", "list"],
        ["workflow", "list", "--output", "table"],
        ["-o", "json", "workflow", "list", "-o", "table"],  # the last one given wins
    ],
)
def test_global_options_anywhere(real, argv):
    real.start("w1")
    res = invoke("--engine-url", real.url, *argv)
    assert res.exit_code == 0
    assert res.stdout.split()[:5] == ["ID", "TYPE", "STATUS", "QUEUE", "CREATED"]


def test_engine_url_flag_after_subcommand_and_env(real):
    real.start("w1")
    assert json.loads(invoke("workflow", "describe", "w1", "--engine-url", real.url).stdout)["id"] == "w1"
    res = invoke("workflow", "describe", "w1", env={"ASSAY_ENGINE_URL": real.url})
    assert json.loads(res.stdout)["id"] == "w1"
    # the flag beats the environment
    res = invoke(
        "--engine-url",
        real.url,
        "workflow",
        "describe",
        "w1",
        env={"ASSAY_ENGINE_URL": f"http://127.0.0.1:{closed_port()}"},
    )
    assert res.exit_code == 0


def test_env_beats_config_file_which_beats_default(real, isolated_env, tmp_path):
    cfg = tmp_path / "xdg" / "assay" / "config.yaml"
    cfg.parent.mkdir(parents=True)
    cfg.write_text(f"engine_url: {real.url}\nnamespace: fromcfg\noutput: table\n")
    real.start("w1", namespace="fromcfg")
    real.start("w2", namespace="fromenv")
    res = invoke("workflow", "list")
    assert res.stdout.splitlines()[1].split()[0] == "w1"  # config: url, namespace, table
    res = invoke("workflow", "list", env={"ASSAY_NAMESPACE": "fromenv", "ASSAY_OUTPUT": "json"})
    assert [w["id"] for w in json.loads(res.stdout)] == ["w2"]
    res = invoke(
        "workflow", "list", "-n", "fromcfg", env={"ASSAY_NAMESPACE": "fromenv", "ASSAY_OUTPUT": "json"}
    )
    assert [w["id"] for w in json.loads(res.stdout)] == ["w1"]


def test_home_config_and_explicit_config(real, isolated_env, tmp_path):
    home_cfg = isolated_env / ".config" / "assay" / "config.yaml"
    home_cfg.parent.mkdir(parents=True)
    home_cfg.write_text(f"engine_url: {real.url}\napi_key: from-home\n")
    assert invoke("namespace", "list").exit_code == 0
    assert real.last("GET")["headers"]["Authorization"] == "Bearer from-home"
    other = tmp_path / "other.yaml"
    other.write_text(f"engine_url: {real.url}\napi_key: from-other\n")
    assert invoke("namespace", "list", "--config", str(other)).exit_code == 0
    assert real.last("GET")["headers"]["Authorization"] == "Bearer from-other"
    assert invoke("namespace", "list", env={"ASSAY_CONFIG_FILE": str(other)}).exit_code == 0
    assert real.last("GET")["headers"]["Authorization"] == "Bearer from-other"


def test_api_key_file_env(real, tmp_path):
    key = tmp_path / "key"
    key.write_text("assay_secret\n")
    res = invoke(
        "--engine-url",
        real.url,
        "worker",
        "list",
        env={"ASSAY_API_KEY_FILE": str(key), "ASSAY_API_KEY": "loser"},
    )
    assert res.exit_code == 0
    assert real.last("GET", "/api/v1/workers")["headers"]["Authorization"] == "Bearer assay_secret"


def test_config_errors_exit_1(tmp_path, isolated_env):
    line = one_error_line(invoke("workflow", "list", "--config", str(tmp_path / "nope.yaml")), 1)
    assert "config file not found" in line
    bad = tmp_path / "xdg" / "assay" / "config.yaml"
    bad.parent.mkdir(parents=True)
    bad.write_text("engine_url: http://x\n  namespace: : :\n")
    line = one_error_line(invoke("workflow", "list"), 1)
    assert str(bad) in line and "line 2" in line
    line = one_error_line(invoke("queue", "stats", env={"ASSAY_CONFIG_FILE": str(tmp_path / "gone.yaml")}), 1)
    assert "gone.yaml (from ASSAY_CONFIG_FILE)" in line


def test_bad_output_env_is_exit_1(real):
    line = one_error_line(invoke("--engine-url", real.url, "queue", "stats", env={"ASSAY_OUTPUT": "xml"}), 1)
    assert "unknown output format 'xml' from ASSAY_OUTPUT" in line


def test_unreachable_engine_is_one_line_exit_1():
    port = closed_port()
    line = one_error_line(invoke("--engine-url", f"http://127.0.0.1:{port}", "workflow", "list"), 1)
    assert line == (
        f"Error: engine unreachable at http://127.0.0.1:{port}: connection refused. Start the engine with "
        "`assay serve`, or point at yours with --engine-url URL (env ASSAY_ENGINE_URL)"
    )


def test_http_errors_are_exit_1(real):
    line = one_error_line(invoke("--engine-url", real.url, "workflow", "describe", "ghost"), 1)
    assert line == "Error: not found: workflow ghost (HTTP 404)"


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["workflow", "nosuch"], "No such command 'nosuch'"),
        (["workflow", "list", "--bogus"], "No such option"),
        (["workflow", "describe"], "Missing argument 'ID'"),
        (["workflow", "start"], "Missing option '-t' / '--type'"),
        (["--output", "xml", "workflow", "list"], "Invalid value for '-o' / '--output'"),
        (["workflow", "wait", "x", "--timeout", "soon"], "--timeout"),
        (["completion", "tcsh"], "tcsh"),
    ],
)
def test_usage_errors_exit_64(argv, needle):
    line = one_error_line(invoke(*argv), 64)
    assert needle in line and "--help" in line


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["workflow", "start", "-t", "T", "--input", "{nope"], "--input: invalid JSON"),
        (["workflow", "start", "-t", "T", "--search-attrs", "[1]"], "--search-attrs: expected a JSON object"),
        (["workflow", "signal", "w", "s", "{'single': 1}"], "payload: invalid JSON"),
        (
            ["workflow", "start", "-t", "T", "--input", "@/definitely/not/here.json"],
            "cannot read /definitely",
        ),
        (["schedule", "create", "s", "-t", "T", "--cron", "x", "--input", "tru"], "--input: invalid JSON"),
        (["workflow", "continue-as-new", "w", "--input", ""], "invalid JSON"),
    ],
)
def test_bad_json_exit_64_before_any_request(real, argv, needle):
    line = one_error_line(invoke("--engine-url", real.url, *argv), 64)
    assert needle in line
    assert real.requests == []


def test_stdin_can_be_read_once(real):
    res = invoke(
        "--engine-url",
        real.url,
        "workflow",
        "start",
        "-t",
        "T",
        "--input",
        "-",
        "--search-attrs",
        "-",
        input="{}",
    )
    assert "already read" in one_error_line(res, 64)
    res = invoke("--engine-url", real.url, "workflow", "start", "-t", "T", "--input", "-", input="not json")
    assert "invalid JSON in stdin" in one_error_line(res, 64)


def test_bad_engine_url_is_usage_error():
    assert "unsupported engine URL scheme" in one_error_line(
        invoke("--engine-url", "ftp://x", "queue", "stats"), 64
    )


def test_traceback_only_on_request():
    port = closed_port()
    res = invoke("--engine-url", f"http://127.0.0.1:{port}", "workflow", "list", "--traceback")
    assert res.exit_code == 1 and "Traceback" in res.stderr
    assert res.stderr.splitlines()[-1].startswith("Error: engine unreachable")
    res = invoke("--engine-url", f"http://127.0.0.1:{port}", "workflow", "list", env={"ASSAY_TRACEBACK": "1"})
    assert "Traceback" in res.stderr


def test_group_without_subcommand_prints_help_and_version():
    res = invoke("workflow")
    assert res.exit_code == 0 and "Commands:" in res.stdout and "wait" in res.stdout
    res = invoke("--version")
    assert res.exit_code == 0 and res.stdout == f"assay {__version__}\n"
    res = invoke()
    assert res.exit_code == 0 and "workflow" in res.stdout
