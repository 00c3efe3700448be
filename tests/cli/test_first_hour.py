"""What a first-time user runs into: typos get suggestions at every level, one spelling of statuses, a
help that points at installed help and the online docs, a `wait` that prints one line on a terminal
and says why a workflow nobody can take never starts."""

from __future__ import annotations

import importlib.metadata
import json
import os
import pty
import subprocess
import tomllib

import pytest
from click.testing import CliRunner

from assay.cli import cli
from tests.helpers import ROOT, assay_cmd, http, start_engine, subprocess_env, wait_until
from tests.workerkit import RawWorker

STATUSES = "PENDING, RUNNING, WAITING, COMPLETED, FAILED, CANCELLED, TIMED_OUT"


def invoke(*args, env=None):
    return CliRunner().invoke(cli, list(args), env=env, prog_name="assay", catch_exceptions=False)


def one_error_line(res, code):
    assert res.exit_code == code, (res.exit_code, res.stdout, res.stderr)
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), res.stderr
    return lines[0]


@pytest.mark.parametrize(
    "argv,typo,suggestion,where",
    [
        (["serv"], "serv", "Did you mean 'serve'?", "assay"),
        (["workflw", "list"], "workflw", "'workflow'", "assay"),
        (["completoin", "bash"], "completoin", "Did you mean 'completion'?", "assay"),
        (["workflow", "lst"], "lst", "Did you mean 'list'?", "assay workflow"),
        (["schedule", "lis"], "lis", "Did you mean 'list'?", "assay schedule"),
        (["namespace", "lst"], "lst", "Did you mean 'list'?", "assay namespace"),
    ],
)
def test_typos_get_a_suggestion_at_every_level(argv, typo, suggestion, where):
    line = one_error_line(invoke(*argv), 64)
    assert line.startswith(f"Error: No such command '{typo}'. ")
    assert suggestion in line and line.endswith(f"(see '{where} --help')")


def test_no_suggestion_when_nothing_is_close():
    assert one_error_line(invoke("zzz"), 64) == "Error: No such command 'zzz'. (see 'assay --help')"


@pytest.mark.parametrize("argv", [["workflow", "list", "--status"], ["workflow", "wait", "x", "--target"]])
def test_statuses_are_spelled_as_the_api_spells_them(argv):
    line = one_error_line(invoke(*argv, "runing"), 64)
    assert f"'runing' is not one of {STATUSES}." in line
    assert STATUSES in " ".join(invoke(*argv[:-1], "--help").stdout.split())


def test_top_level_help_points_at_installed_help_and_the_online_docs():
    out = invoke("--help").stdout
    assert "docs/cli.md" not in out  # a repository path means nothing to someone who pip-installed assay
    assert "Run 'assay COMMAND --help' for a command's options and examples." in out
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]["Documentation"]
    urls = dict(
        (label.strip(), url.strip())
        for label, _, url in (
            e.partition(",") for e in importlib.metadata.metadata("assay-workflow").get_all("Project-URL")
        )
    )
    assert urls["Documentation"] == declared  # the installed metadata is the source
    assert f"Documentation: {declared}" in out


# -- against a real engine ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    eng = start_engine(tmp_path_factory.mktemp("first-hour"))
    yield eng
    eng.stop()


def cli_env(engine, home):
    env = subprocess_env({"HOME": str(home), "XDG_CONFIG_HOME": str(home / "xdg")})
    for name in [n for n in env if n.startswith("ASSAY_")]:
        del env[name]
    env["ASSAY_ENGINE_URL"] = engine.url
    return env


def on_a_terminal(argv, env) -> tuple[int, str, str]:
    """Run the CLI with stdout on a pseudo-terminal (stderr piped); returns (exit code, terminal, stderr)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(argv, stdout=slave, stderr=subprocess.PIPE, env=env, text=True)
    os.close(slave)
    out = b""
    try:
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            out += chunk
        err = proc.stderr.read()
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    return proc.returncode, out.decode().replace("\r\n", "\n"), err


@pytest.mark.e2e
def test_wait_prints_one_line_on_a_terminal_and_the_record_as_json(engine, isolated_env):
    env = cli_env(engine, isolated_env)
    with RawWorker(engine.api, queue="first-hour"):
        st, _, _ = http(
            "POST",
            engine.api + "/workflows",
            {"workflow_type": "Hello", "workflow_id": "fh-1", "task_queue": "first-hour"},
        )
        assert st == 201
        code, term, err = on_a_terminal([*assay_cmd(), "workflow", "wait", "fh-1", "--timeout", "30"], env)
    assert code == 0, err
    assert term == "fh-1  COMPLETED\n"  # the outcome, once: `describe` shows the record
    res = subprocess.run(
        [*assay_cmd(), "workflow", "wait", "fh-1", "-o", "json"], capture_output=True, text=True, env=env
    )
    record = json.loads(res.stdout)
    assert record["id"] == "fh-1" and record["status"] == "COMPLETED" and "result" in record


@pytest.mark.e2e
def test_wait_timeout_says_when_no_worker_polls_the_queue_for_the_type(engine, isolated_env):
    env = cli_env(engine, isolated_env)

    def wait_line(wid):
        res = subprocess.run(
            [*assay_cmd(), "workflow", "wait", wid, "--timeout", "0.3"],
            capture_output=True,
            text=True,
            env=env,
            timeout=30,
        )
        assert res.returncode == 2 and res.stdout == "", res
        (line,) = res.stderr.splitlines()
        return line

    def start(wid, queue):
        st, body, _ = http(
            "POST",
            engine.api + "/workflows",
            {"workflow_type": "Lonely", "workflow_id": wid, "task_queue": queue},
        )
        assert st == 201, body

    start("lonely-1", "nobody-here")
    hint = "no worker is polling queue 'nobody-here' for type 'Lonely' (see 'assay worker list')"
    assert wait_line("lonely-1") == (
        f"Error: timeout after 0.3s waiting for lonely-1 (last status: PENDING): {hint}"
    )
    # a worker on the queue that declared other types cannot take it either
    st, _, _ = http(
        "POST",
        engine.api + "/workers/register",
        {"identity": "other", "queue": "nobody-here", "workflows": ["Other"], "activities": []},
    )
    assert st == 200
    assert wait_line("lonely-1").endswith(hint)
    # one that declared the type (or declared nothing: it may take anything) could: no hint, no guess
    start("lonely-2", "maybe-here")
    st, _, _ = http("POST", engine.api + "/workers/register", {"identity": "any", "queue": "maybe-here"})
    assert st == 200
    wait_until(lambda: any(w["task_queue"] == "maybe-here" for w in http("GET", engine.api + "/workers")[1]))
    assert wait_line("lonely-2") == "Error: timeout after 0.3s waiting for lonely-2 (last status: PENDING)"
