"""Generated files are fresh, every help ends with an example, completion scripts load and complete."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
from click.testing import CliRunner

from assay.cli import cli, docgen
from assay.cli.completion import FILES, SHELLS, script
from tests.cli.test_sdk import closed_port

ROOT = docgen.ROOT


def test_generated_files_are_fresh():
    stale = [str(p.relative_to(ROOT)) for p in docgen.stale()]
    assert stale == [], f"regenerate with: python -m assay.cli.docgen  (stale: {stale})"


def test_docgen_check_detects_a_stale_file(tmp_path, monkeypatch):
    monkeypatch.setattr(docgen, "COMPLETIONS", tmp_path / "completions")
    monkeypatch.setattr(docgen, "DOC", tmp_path / "cli.md")
    monkeypatch.setattr(docgen, "DASHBOARD_DOC", tmp_path / "dashboard.md")
    (tmp_path / "cli.md").write_text(
        "# x\n"
        + docgen.OPTIONS_BEGIN
        + "\nSTALE-OPTIONS\n"
        + docgen.OPTIONS_END
        + "\n"
        + docgen.BEGIN
        + "\nSTALE-MARKER\n"
        + docgen.END
        + "\ntail\n"
    )
    (tmp_path / "dashboard.md").write_text(
        f"# d\n{docgen.WHITELABEL_BEGIN}\nSTALE\n{docgen.WHITELABEL_END}\n"
    )
    assert docgen.main(["--check"]) == 1
    assert docgen.main([]) == 0
    assert docgen.main(["--check"]) == 0
    text = (tmp_path / "cli.md").read_text()
    assert text.startswith("# x\n") and text.endswith("\ntail\n") and "STALE-MARKER" not in text
    assert "#### `assay workflow wait`" in text
    assert "STALE-OPTIONS" not in text and "| `-o, --output` | `ASSAY_OUTPUT` | `output` |" in text
    dash = (tmp_path / "dashboard.md").read_text()
    assert (
        "STALE" not in dash and "| `ASSAY_WHITELABEL_API_DOCS_URL` | `/api/v1/engine/workflow/docs` |" in dash
    )
    assert sorted(p.name for p in (tmp_path / "completions").iterdir()) == sorted(FILES.values())


def test_every_help_ends_with_an_example_block():
    seen = []
    for path, text in docgen.iter_commands():
        seen.append(" ".join(path))
        lines = text.rstrip().splitlines()
        heads = [i for i, line in enumerate(lines) if line.strip() in ("Example:", "Examples:")]
        assert heads, f"{' '.join(path)} --help has no Example block"
        tail = lines[heads[-1] + 1 :]
        assert tail and all(line.startswith("    assay ") or line.startswith("    ") for line in tail), path
        assert any("assay" in line for line in tail)
    for cmd in (
        "workflow start",
        "workflow wait",
        "workflow events",
        "schedule trigger",
        "schedule patch",
        "namespace delete",
        "worker list",
        "queue stats",
        "completion",
    ):
        assert f"assay {cmd}" in seen


def test_help_shows_global_options_on_leaf_commands():
    res = CliRunner().invoke(cli, ["workflow", "wait", "--help"], prog_name="assay")
    assert res.exit_code == 0
    assert (
        "Global options" in res.stdout
        and "--engine-url URL" in res.stdout
        and "--target STATUS" in res.stdout
    )


@pytest.mark.parametrize("shell", SHELLS)
def test_completion_command_prints_the_committed_script(shell):
    res = CliRunner().invoke(cli, ["completion", shell], prog_name="assay")
    assert res.exit_code == 0
    assert res.stdout == (ROOT / "shell-completions" / FILES[shell]).read_text() == script(shell)


def _wrapper_bin(tmp_path):
    """A directory with an `assay` executable running this checkout, for shells to call."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    exe = bindir / "assay"
    exe.write_text(f'#!/bin/sh\nPYTHONPATH={ROOT} exec {sys.executable} -m assay "$@"\n')
    exe.chmod(0o755)
    return bindir


def _shell_env(tmp_path, **extra):
    env = dict(os.environ)
    env["PATH"] = str(_wrapper_bin(tmp_path)) + os.pathsep + env["PATH"]
    env.update(extra)
    return env


@pytest.mark.parametrize(
    "shell,argv", [("bash", ["bash", "-n"]), ("zsh", ["zsh", "-n"]), ("fish", ["fish", "-n"])]
)
def test_scripts_parse_in_their_shell(shell, argv):
    if shutil.which(argv[0]) is None:
        pytest.skip(f"{argv[0]} not installed")
    path = ROOT / "shell-completions" / FILES[shell]
    proc = subprocess.run([*argv, str(path)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr


def test_bash_completion_works_end_to_end(tmp_path):
    if shutil.which("bash") is None:
        pytest.skip("bash not installed")
    code = (
        f"source {ROOT / 'shell-completions' / 'assay.bash'}\n"
        'COMP_WORDS=(assay workflow wa); COMP_CWORD=2; _assay_completion assay; echo "${COMPREPLY[@]}"\n'
        "COMPREPLY=(); COMP_WORDS=(assay workflow list --status C); COMP_CWORD=4; _assay_completion assay; "
        'echo "${COMPREPLY[@]}"\n'
    )
    proc = subprocess.run(
        ["bash", "-c", code], capture_output=True, text=True, timeout=60, env=_shell_env(tmp_path)
    )
    assert proc.stdout.splitlines() == ["wait", "COMPLETED CANCELLED"], proc.stderr


def test_fish_completion_works_end_to_end(tmp_path):
    if shutil.which("fish") is None:
        pytest.skip("fish not installed")
    code = f"source {ROOT / 'shell-completions' / 'assay.fish'}; complete -C 'assay sched'"
    proc = subprocess.run(
        ["fish", "-c", code], capture_output=True, text=True, timeout=60, env=_shell_env(tmp_path)
    )
    assert proc.stdout.split("\t")[0] == "schedule", (proc.stdout, proc.stderr)


def test_elvish_completer_works(tmp_path):
    if shutil.which("elvish") is None:
        pytest.skip("elvish not installed")
    # edit: exists only in an interactive shell: stand in for it, keep the rest of the script as is
    body = (ROOT / "shell-completions" / "assay.elv").read_text()
    body = body.replace("edit:completion:arg-completer[assay]", "completers[assay]")
    body = body.replace("edit:complex-candidate", "complex-candidate")
    prog = (
        "var completers = [&]\n"
        "fn complex-candidate {|v &display=''| put 'C:'$v }\n"
        + body
        + "$completers[assay] assay namesp | each {|x| echo $x}\n"
        "$completers[assay] assay workflow wait --target '' | each {|x| echo $x}\n"
    )
    f = tmp_path / "t.elv"
    f.write_text(prog)
    proc = subprocess.run(
        ["elvish", "-norc", str(f)], capture_output=True, text=True, timeout=60, env=_shell_env(tmp_path)
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.split()
    assert lines[0] == "C:namespace"
    assert lines[1:] == ["PENDING", "RUNNING", "WAITING", "COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT"]


def complete(shell, words, incomplete="", env=None):
    """Ask the CLI for completions the way the scripts do (in-process)."""
    e = {"_ASSAY_COMPLETE": f"{shell}_complete"}
    if shell in ("bash", "zsh"):
        e.update(COMP_WORDS=" ".join(["assay", *words, incomplete]), COMP_CWORD=str(len(words) + 1))
    elif shell == "powershell":
        e.update(COMP_WORDS=" ".join(["assay", *words, incomplete]), COMP_INCOMPLETE=incomplete)
    elif shell == "elvish":
        e.update(COMP_WORDS="\n".join(["assay", *words]), COMP_INCOMPLETE=incomplete)
    e.update(env or {})
    res = CliRunner().invoke(cli, [], env=e, prog_name="assay")
    assert res.exit_code == 0
    return res.stdout


def test_dynamic_workflow_ids_schedules_and_namespaces(real):
    real.start("order-1", "Order", status="RUNNING")
    real.start("order-2", "Order")
    real.start("other")
    real.engine.create_schedule(
        {"name": "nightly", "namespace": "main", "workflow_type": "R", "cron_expr": "0 0 2 * * *"}
    )
    real.engine.create_namespace("billing")
    out = complete("bash", ["--engine-url", real.url, "workflow", "describe"], "ord")
    assert out.split() == ["plain,order-2", "plain,order-1"]
    out = complete("zsh", ["workflow", "wait"], "order-1", env={"ASSAY_ENGINE_URL": real.url})
    assert out.splitlines()[:3] == ["plain", "order-1", "Order RUNNING"]
    assert complete("bash", ["schedule", "trigger", "--engine-url", real.url], "n").split() == [
        "plain,nightly"
    ]
    assert "plain,billing" in complete("bash", ["--engine-url", real.url, "-n"], "b").split()
    assert complete("powershell", ["--engine-url", real.url, "namespace", "delete"], "ma").split() == ["main"]
    assert (
        complete("elvish", ["--engine-url", real.url, "workflow", "events"], "oth") == "other\tDemo PENDING\n"
    )


def test_dynamic_completion_is_quiet_without_an_engine():
    out = complete("bash", ["--engine-url", f"http://127.0.0.1:{closed_port()}", "workflow", "describe"], "")
    assert out.strip() == ""


def test_static_completions():
    assert complete("bash", ["workflow", "list", "--status"], "r").split() == ["plain,RUNNING"]
    assert complete("bash", ["schedule", "patch", "x", "--overlap"], "").split() == [
        "plain,skip",
        "plain,queue",
        "plain,cancel_old",
        "plain,allow_all",
    ]
    assert "plain,elvish" in complete("bash", ["completion"], "").split()
    out = complete("powershell", ["work"], "work")
    assert [line.split("\t")[0] for line in out.splitlines()] == ["worker", "workflow"]


def test_output_formats_complete_from_the_declarations():
    got = complete("bash", ["workflow", "list", "-o"], "").split()
    assert got == ["plain,table", "plain,json", "plain,jsonl", "plain,yaml"]
    assert complete("bash", ["-o"], "y").split() == ["plain,yaml"]


def test_completion_broken_pipe_exits_0():
    # `true` exits without reading, so the script's write hits a closed pipe
    cmd = f"{sys.executable} -m assay completion zsh | true; echo ${{PIPESTATUS[0]}}"
    proc = subprocess.run(
        cmd,
        shell=True,
        executable="/bin/bash",
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=60,
    )
    assert proc.stdout.strip() == "0", proc.stderr
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr
