"""Natives for the process-facing globals: log, env, os extras, fs, shell, time and sleep."""

from __future__ import annotations

import logging
import os
import platform
import shutil
import socket
import subprocess
import sys
import time
from typing import Any

from assay.lua.natives import LuaRaise, from_lua, is_table, native, opt_text, raw, text, to_lua

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
script_log = logging.getLogger("assay.lua.script")


def log_level_from_env() -> int:
    from assay.config import SETTINGS_BY_NAME, from_env

    return LEVELS.get(from_env(SETTINGS_BY_NAME["log_level"], strict=False), logging.INFO)


class SysNatives:
    def __init__(self, lua: Any) -> None:
        self.lua = lua

    # -- log -----------------------------------------------------------------------------------
    @native("log")
    def log(self, level: Any = None, logger: Any = None, msg: Any = None) -> None:
        lvl = LEVELS.get(text(level).lower(), logging.INFO)
        name = opt_text(logger)
        lg = logging.getLogger(name) if name else script_log
        lg.log(lvl, "%s", text(msg))

    @native("log.enabled")
    def log_enabled(self, level: Any = None) -> bool:
        return script_log.isEnabledFor(LEVELS.get(text(level).lower(), logging.INFO))

    # -- time ----------------------------------------------------------------------------------
    @native("time")
    def now(self) -> float:
        return time.time()

    @native("sleep")
    def sleep(self, secs: Any = None) -> None:
        if isinstance(secs, bool) or not isinstance(secs, int | float) or secs != secs or secs < 0:
            raise LuaRaise("seconds must be a non-negative number")
        time.sleep(float(secs))

    # -- env -----------------------------------------------------------------------------------
    @native("env.get")
    def env_get(self, name: Any = None) -> bytes | None:
        v = os.environ.get(text(name, "name"))
        return None if v is None else raw(v)

    @native("env.set")
    def env_set(self, name: Any = None, value: Any = None) -> None:
        k = text(name, "name")
        if not k or "=" in k or "\0" in k:
            raise LuaRaise(f"invalid variable name {k!r}")
        if value is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = text(value, "value")

    @native("env.list")
    def env_list(self) -> Any:
        return to_lua(self.lua, dict(os.environ))

    # -- os ------------------------------------------------------------------------------------
    @native("os.hostname")
    def hostname(self) -> bytes:
        return raw(socket.gethostname())

    @native("os.arch")
    def arch(self) -> bytes:
        m = platform.machine().lower()
        return raw({"amd64": "x86_64", "arm64": "aarch64"}.get(m, m))

    @native("os.platform")
    def platform(self) -> bytes:
        p = sys.platform
        return raw("macos" if p == "darwin" else "windows" if p.startswith("win") else p.rstrip("0123456789"))

    @native("os.pid")
    def pid(self) -> int:
        return os.getpid()

    @native("_tick")
    def tick(self) -> None:
        """Called by a Lua count hook so Python gets to run signal handlers (Ctrl-C) in busy loops."""

    @native("flush")
    def flush(self) -> None:
        for s in (sys.stdout, sys.stderr):
            try:
                s.flush()
            except (OSError, ValueError):
                pass

    # -- fs ------------------------------------------------------------------------------------
    @native("fs.read")
    def fs_read(self, path: Any = None) -> bytes:
        with open(text(path, "path"), "rb") as f:
            return f.read()

    @native("fs.write")
    def fs_write(self, path: Any = None, data: Any = None) -> None:
        with open(text(path, "path"), "wb") as f:
            f.write(raw(text(data, "data")) if not isinstance(data, bytes) else data)

    @native("fs.append")
    def fs_append(self, path: Any = None, data: Any = None) -> None:
        with open(text(path, "path"), "ab") as f:
            f.write(raw(text(data, "data")) if not isinstance(data, bytes) else data)

    @native("fs.exists")
    def fs_exists(self, path: Any = None) -> bool:
        return os.path.exists(text(path, "path"))

    @native("fs.is_dir")
    def fs_is_dir(self, path: Any = None) -> bool:
        return os.path.isdir(text(path, "path"))

    @native("fs.list")
    def fs_list(self, path: Any = None) -> Any:
        return to_lua(self.lua, sorted(os.listdir(text(path or b".", "path"))))

    @native("fs.mkdir")
    def fs_mkdir(self, path: Any = None) -> None:
        os.makedirs(text(path, "path"), exist_ok=True)

    @native("fs.remove")
    def fs_remove(self, path: Any = None, opts: Any = None) -> bool:
        p = text(path, "path")
        o = from_lua(opts) if is_table(opts) else {}
        recursive = isinstance(o, dict) and o.get("recursive") is True
        if not os.path.lexists(p):
            return False
        if os.path.isdir(p) and not os.path.islink(p):
            if recursive:
                shutil.rmtree(p)
            else:
                os.rmdir(p)
        else:
            os.remove(p)
        return True

    # -- shell ---------------------------------------------------------------------------------
    @native("shell.exec")
    def shell_exec(self, cmd: Any = None, opts: Any = None) -> Any:
        if is_table(cmd):
            argv = from_lua(cmd)
            if (
                not isinstance(argv, list)
                or not argv
                or not all(isinstance(a, str | int | float) for a in argv)
            ):
                raise LuaRaise("command must be a non-empty list of strings (argv) or a string")
            args: list[str] | str = [str(a) for a in argv]
            use_shell = False
        else:
            args = text(cmd, "command")
            use_shell = True
        o = from_lua(opts) if is_table(opts) else {}
        if not isinstance(o, dict):
            o = {}
        timeout = o.get("timeout")
        if timeout is not None and (not isinstance(timeout, int | float) or timeout <= 0):
            raise LuaRaise("timeout must be a positive number of seconds")
        env = None
        if isinstance(o.get("env"), dict):
            env = dict(os.environ)
            env.update({str(k): str(v) for k, v in o["env"].items()})
        stdin = o.get("stdin")
        try:
            proc = subprocess.Popen(
                args,
                shell=use_shell,
                cwd=o.get("cwd"),
                env=env,
                stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as e:
            raise LuaRaise(
                f"cannot run {args[0] if isinstance(args, list) else args!r}: {e.strerror or e}"
            ) from None
        timed_out = False
        try:
            out, err = proc.communicate(raw(stdin) if stdin is not None else None, timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            try:
                os.killpg(proc.pid, 9)
            except OSError:
                proc.kill()
            out, err = proc.communicate()
        code = 124 if timed_out else proc.returncode
        if code < 0:
            code = 128 - code
        return to_lua(
            self.lua,
            {
                "code": code,
                "status": code,
                "ok": code == 0 and not timed_out,
                "stdout": out,
                "stderr": err,
                "timed_out": timed_out,
            },
        )
