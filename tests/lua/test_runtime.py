"""`assay run` and the Lua runtime: arguments, errors, exit codes, require, the standard library."""

from __future__ import annotations

import pytest

from assay.lua import Runtime, ScriptError
from assay.lua.runtime import embedded_module
from tests.lua.conftest import assay_run


@pytest.mark.e2e
def test_script_file_with_args_and_print(tmp_path):
    script = tmp_path / "s.lua"
    script.write_text('print("args", #arg, arg[0] ~= nil, arg[1], arg[2], select("#", ...), ...)\n')
    r = assay_run(str(script), "one", "--two")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().split("\t") == ["args", "2", "true", "one", "--two", "2", "one", "--two"]


@pytest.mark.e2e
def test_inline_code_gets_all_args():
    r = assay_run("-e", "print(arg[1] .. '+' .. arg[2])", "a", "b")
    assert (r.returncode, r.stdout.strip()) == (0, "a+b")


@pytest.mark.e2e
def test_lua_error_prints_file_line_message_and_exits_1(tmp_path):
    (tmp_path / "bad.lua").write_text("local x = 1\n\nerror('something broke')\n")
    r = assay_run("bad.lua", cwd=tmp_path)
    assert r.returncode == 1
    assert r.stderr.strip() == "bad.lua:3: something broke"
    assert "Traceback" not in r.stderr


@pytest.mark.e2e
def test_traceback_flag_and_debug_env_show_tracebacks(tmp_path):
    script = tmp_path / "bad.lua"
    script.write_text("local function inner() error('deep') end\ninner()\n")
    r = assay_run("--traceback", str(script))
    assert r.returncode == 1
    assert "stack traceback:" in r.stderr and "in local 'inner'" in r.stderr
    assert "Traceback (most recent call last)" in r.stderr
    r2 = assay_run(str(script), env={"ASSAY_DEBUG": "1"})
    assert "stack traceback:" in r2.stderr


@pytest.mark.e2e
def test_missing_file_and_syntax_error_exit_1(tmp_path):
    r = assay_run(str(tmp_path / "nope.lua"))
    assert r.returncode == 1
    assert "cannot open" in r.stderr and "nope.lua" in r.stderr
    (tmp_path / "syntax.lua").write_text("local x = = 2\n")
    r = assay_run("syntax.lua", cwd=tmp_path)
    assert r.returncode == 1
    assert "syntax.lua:1:" in r.stderr and "unexpected symbol" in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.e2e
def test_no_file_is_a_usage_error():
    r = assay_run()
    assert r.returncode == 64 and "FILE" in r.stderr  # the CLI's usage-error code


@pytest.mark.e2e
def test_os_exit_code_and_output_flushed():
    r = assay_run("-e", "io.write('partial'); print(' line'); os.exit(7)")
    assert r.returncode == 7
    assert r.stdout == "partial line\n"


@pytest.mark.e2e
def test_shebang_line_keeps_line_numbers(tmp_path):
    (tmp_path / "x.lua").write_text("#!/usr/bin/env assay\nprint('ok')\nerror('line three')\n")
    r = assay_run("x.lua", cwd=tmp_path)
    assert r.stdout.strip() == "ok"
    assert "x.lua:3: line three" in r.stderr


def test_error_objects_that_are_tables(lua):
    with pytest.raises(ScriptError) as e:
        lua("error({ code = 42 })")
    assert e.value.message == '(error object) {"code":42}'
    with pytest.raises(ScriptError) as e:
        lua("error(setmetatable({}, { __tostring = function() return 'custom' end }))")
    assert e.value.message == "custom"


def test_native_errors_carry_the_callers_position(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.lua").write_text("local a = 1\nlocal data = fs.read('/definitely/not/here')\n")
    with pytest.raises(ScriptError) as e:
        Runtime(path="p.lua").run()
    assert e.value.message == "p.lua:2: fs.read: No such file or directory: /definitely/not/here"
    # pcall sees a plain string message
    with pytest.raises(ScriptError) as e:
        Runtime(code="local ok, err = pcall(fs.read, '/nope'); error(type(err) .. '|' .. err, 0)").run()
    assert e.value.message.startswith("string|fs.read: No such file or directory")


def test_standard_library_is_whole(lua):
    r = lua("""
      OUT = {
        string.format('%05.1f', 3.14159), table.concat({1, 2, 3}, ','), math.max(3, 9), math.type(1),
        type(io.open), type(os.getenv), type(os.exit), type(os.remove), type(load), type(dofile),
        type(loadfile), type(string.dump), type(require), type(coroutine.wrap), type(utf8.char),
        type(debug.traceback), os.time() > 1600000000, type(os.clock()), os.getenv('HOME') ~= nil,
        load('return 1 + 1')(), python == nil,
      }
    """)
    assert r.get("OUT") == [
        "003.1",
        "1,2,3",
        9,
        "integer",
        "function",
        "function",
        "function",
        "function",
        "function",
        "function",
        "function",
        "function",
        "function",
        "function",
        "function",
        "function",
        True,
        "number",
        True,
        2,
        True,
    ]


@pytest.mark.e2e
def test_require_finds_modules_next_to_the_script(tmp_path):
    (tmp_path / "helper.lua").write_text("return { double = function(x) return x * 2 end }\n")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "init.lua").write_text("return { name = 'pkg' }\n")
    (tmp_path / "main.lua").write_text(
        "local h = require('helper'); local p = require('pkg'); print(h.double(21), p.name)\n"
        "dofile(arg[0]:gsub('main.lua$', 'side.lua'))\n"
    )
    (tmp_path / "side.lua").write_text("print('side')\n")
    r = assay_run(str(tmp_path / "main.lua"), cwd="/")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["42", "pkg", "side"]


def test_require_assay_modules_come_from_the_package(lua):
    r = lua("""
      local w = require('assay.workflow')
      OUT = { type(w.connect), type(w.define), type(w.listen), type(w.schedules.trigger),
              require('assay.workflow') == w }
    """)
    assert r.get("OUT") == ["function", "function", "function", "function", True]
    with pytest.raises(ScriptError) as e:
        lua("require('assay.does_not_exist')")
    assert "module 'assay.does_not_exist' not found" in e.value.message
    assert "no embedded module 'assay.does_not_exist'" in e.value.message


def test_embedded_module_lookup():
    src, chunk = embedded_module("assay.workflow")
    assert b'require("assay.workflow.client")' in src and chunk == "@assay/lua/workflow.lua"
    assert embedded_module("assay.workflow.replay")[1] == "@assay/lua/workflow/replay.lua"
    assert embedded_module("assay._prelude") is None
    assert embedded_module("assay.../etc/passwd") is None
    assert embedded_module("other.workflow") is None


def test_python_objects_are_opaque(lua):
    r = lua("""
      local c = http.client({ timeout = 1 })
      local handle
      for i = 1, 10 do
        local name, v = debug.getupvalue(c.get, i)
        if name == nil then break end
        if type(v) == 'userdata' then handle = v end
      end
      local ok, err = pcall(function() return handle.__class__ end)
      OUT = { handle ~= nil, ok, tostring(err):find('opaque') ~= nil }
    """)
    assert r.get("OUT") == [True, False, True]


def test_runtime_rejects_both_or_neither_source():
    with pytest.raises(ValueError):
        Runtime()
    with pytest.raises(ValueError):
        Runtime(path="x.lua", code="print(1)")


@pytest.mark.e2e
def test_embedded_modules_load_from_a_zipapp(tmp_path):
    import os
    import subprocess
    import sys
    import zipfile

    from tests.helpers import ROOT

    app = tmp_path / "assay.pyz"
    with zipfile.ZipFile(app, "w") as z:
        for path in (ROOT / "assay").rglob("*"):
            if path.suffix in (".py", ".lua") and "__pycache__" not in path.parts:
                z.write(path, path.relative_to(ROOT).as_posix())
        z.writestr("__main__.py", "from assay.cli import main\nmain()\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    code = "local w = require('assay.workflow'); print(type(w.listen), type(require('assay.workflow.replay').Ctx))"
    r = subprocess.run(
        [sys.executable, str(app), "run", "-e", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "function\ttable"


@pytest.mark.e2e
@pytest.mark.parametrize("code", ["sleep(30)", "while true do end"])
def test_ctrl_c_interrupts_a_script(code):
    import signal
    import subprocess
    import sys

    from tests.helpers import ROOT, subprocess_env

    # Ctrl-C at a terminal: the child starts with SIGINT's default disposition. (A shell without job
    # control starts background commands with SIGINT ignored, and a child inherits that: CI may run us so.)
    p = subprocess.Popen(
        [sys.executable, "-m", "assay", "run", "-e", f"print('go'); {code}"],
        cwd=ROOT,
        env=subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert p.stdout.readline().strip() == "go"
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=10)
    assert p.returncode == 130, err
