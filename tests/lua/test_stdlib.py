"""The stdlib globals other than http and json: log, env, os, crypto, base64, fs, yaml, shell, time."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import re
import socket

import pytest

from assay.lua import ScriptError
from tests.lua.conftest import assay_run


@pytest.mark.e2e
def test_log_levels_follow_assay_log_level():
    r = assay_run(
        "-e",
        "log.debug('d1'); log.info('i1', {k = 1}); log.warn('w1'); log.error('e1', 42)",
        env={"ASSAY_LOG_LEVEL": "warn"},
    )
    assert r.returncode == 0
    lines = r.stderr.strip().splitlines()
    assert [re.sub(r"^\S+ ", "", x) for x in lines] == ["WARNING w1", "ERROR e1 42"]
    r = assay_run("-e", "log.debug('d1'); log.info('i1', {k = 1})", env={"ASSAY_LOG_LEVEL": "debug"})
    assert [re.sub(r"^\S+ ", "", x) for x in r.stderr.strip().splitlines()] == [
        "DEBUG d1",
        'INFO  i1 {"k":1}',
    ]


def test_log_in_process(lua, caplog):
    caplog.set_level(logging.DEBUG, logger="assay.lua.script")
    lua("log.info('hello', 1, true, nil); log.warn({a = {1, 2}})")
    msgs = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "assay.lua.script"]
    assert msgs == [("INFO", "hello 1 true nil"), ("WARNING", '{"a":[1,2]}')]


def test_env(lua, monkeypatch):
    monkeypatch.setenv("ASSAY_TEST_VAR", "v1")
    r = lua("""
      OUT = { env.get('ASSAY_TEST_VAR'), env.get('ASSAY_TEST_UNSET_XYZ') == nil }
      env.set('ASSAY_TEST_NEW', 'n1')
      env.set('ASSAY_TEST_VAR', nil)
      OUT[3] = env.list().ASSAY_TEST_NEW
      OUT[4] = os.getenv('ASSAY_TEST_NEW')
    """)
    assert r.get("OUT") == ["v1", True, "n1", "n1"]
    assert "ASSAY_TEST_VAR" not in os.environ
    monkeypatch.delenv("ASSAY_TEST_NEW")
    with pytest.raises(ScriptError, match="env.set: invalid variable name"):
        lua("env.set('A=B', 'x')")


def test_os_extras(lua):
    r = lua("""
      OUT = { os.hostname(), type(os.arch()), os.platform(), os.pid(),
              os.date('!%Y-%m-%d %H:%M', 0), os.date('%Y-%m-%d %H:%M', 0, 5.5), os.date('!%H', 3600),
              math.type(os.time()), type(os.clock()), type(time()), time() - os.time() < 2 }
    """)
    out = r.get("OUT")
    assert out[0] == socket.gethostname()
    assert out[1] == "string" and out[2] == "linux" and out[3] == os.getpid()
    assert out[4:7] == ["1970-01-01 00:00", "1970-01-01 05:30", "01"]
    assert out[7:] == ["integer", "number", "number", True]


def test_sleep_and_time(lua):
    r = lua("local t = time(); sleep(0.05); OUT = time() - t")
    assert r.get("OUT") >= 0.04  # it slept (a lower bound: no upper one, a loaded machine may be slow)
    with pytest.raises(ScriptError, match="sleep: seconds must be a non-negative number"):
        lua("sleep(-1)")


def test_crypto(lua):
    r = lua("""
      OUT = { crypto.hash('abc'), crypto.hash('abc', 'sha512'), crypto.hash('abc', 'sha3-256'),
              crypto.hmac('key', 'msg'), crypto.hmac('key', 'msg', 'sha1'), #crypto.hmac('key', 'msg', 'sha256', true),
              crypto.random(), #crypto.random(10), crypto.uuid(), #crypto.random_bytes(16) }
    """)
    out = r.get("OUT")
    assert out[0] == hashlib.sha256(b"abc").hexdigest()
    assert out[1] == hashlib.sha512(b"abc").hexdigest()
    assert out[2] == hashlib.sha3_256(b"abc").hexdigest()
    assert out[3] == hmac.new(b"key", b"msg", "sha256").hexdigest()
    assert out[4] == hmac.new(b"key", b"msg", "sha1").hexdigest()
    assert out[5] == 32
    assert re.fullmatch(r"[A-Za-z0-9]{32}", out[6]) and out[7] == 10
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", out[8])
    assert out[9] == 16
    with pytest.raises(ScriptError, match="crypto.hash: unsupported algorithm 'md4'"):
        lua("crypto.hash('x', 'md4')")


def test_base64(lua):
    r = lua("""
      local bin = string.char(0, 255, 250, 10)
      OUT = { base64.encode('hello'), base64.decode('aGVsbG8='), base64.decode('aGVsbG8'),
              base64.decode(base64.encode(bin)) == bin, base64.url_encode(string.char(251, 255)),
              base64.url_decode('-_8') == string.char(251, 255) }
    """)
    assert r.get("OUT") == [
        "aGVsbG8=",
        "hello",
        "hello",
        True,
        base64.urlsafe_b64encode(b"\xfb\xff").decode().rstrip("="),
        True,
    ]
    with pytest.raises(ScriptError, match="base64.decode: invalid base64"):
        lua("base64.decode('***')")


def test_fs(lua, tmp_path):
    d = str(tmp_path)
    r = lua(f"""
      local d = {d!r}
      fs.mkdir(d .. '/a/b')
      fs.write(d .. '/a/f.txt', 'one')
      fs.append(d .. '/a/f.txt', ' two')
      fs.write(d .. '/a/bin', string.char(0, 200, 255))
      OUT = {{ fs.read(d .. '/a/f.txt'), fs.exists(d .. '/a/f.txt'), fs.exists(d .. '/nope'), fs.is_dir(d .. '/a'),
              fs.list(d .. '/a'), #fs.read(d .. '/a/bin'), fs.read(d .. '/a/bin'):byte(2) }}
      OUT[8] = fs.remove(d .. '/a/f.txt')
      OUT[9] = fs.remove(d .. '/a/f.txt')
      OUT[10] = pcall(fs.remove, d .. '/a')
      OUT[11] = fs.remove(d .. '/a', {{ recursive = true }})
      OUT[12] = fs.exists(d .. '/a')
    """)
    assert r.get("OUT") == [
        "one two",
        True,
        False,
        True,
        ["b", "bin", "f.txt"],
        3,
        200,
        True,
        False,
        False,
        True,
        False,
    ]


def test_yaml(lua):
    r = lua("""
      local v = yaml.parse('name: x\\nitems:\\n  - 1\\n  - two\\nwhen: 2024-01-02\\nnested: {a: true}\\n')
      OUT = { v.name, v.items[1], v.items[2], v.when, v.nested.a, yaml.encode({ b = 1, list = {1, 2} }) }
    """)
    assert r.get("OUT") == ["x", 1, "two", "2024-01-02", True, "b: 1\nlist:\n- 1\n- 2\n"]
    with pytest.raises(ScriptError, match="yaml.parse: "):
        lua("yaml.parse('a: [1, 2')")
    with pytest.raises(ScriptError, match="yaml.encode: cannot encode a function value"):
        lua("yaml.encode({ f = print })")


def test_shell_exec(lua, tmp_path):
    r = lua(f"""
      local a = shell.exec({{'sh', '-c', 'echo out; echo err >&2; exit 3'}})
      local b = shell.exec('echo "$X" && pwd', {{ env = {{ X = 'from env' }}, cwd = {str(tmp_path)!r} }})
      local c = shell.exec({{'cat'}}, {{ stdin = 'piped in' }})
      local d = shell.exec({{'sleep', '5'}}, {{ timeout = 0.2 }})
      OUT = {{ a.code, a.stdout, a.stderr, a.ok, b.stdout, b.ok, c.stdout, d.timed_out, d.code, d.ok }}
    """)
    assert r.get("OUT") == [
        3,
        "out\n",
        "err\n",
        False,
        f"from env\n{tmp_path}\n",
        True,
        "piped in",
        True,
        124,
        False,
    ]
    with pytest.raises(ScriptError, match="shell.exec: cannot run 'no-such-binary-xyz'"):
        lua("shell.exec({'no-such-binary-xyz'})")
    with pytest.raises(ScriptError, match="command must be a non-empty list"):
        lua("shell.exec({})")
