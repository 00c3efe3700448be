"""Every Lua global function, workflow function and ctx method is documented in docs/lua.md."""

from __future__ import annotations

from lupa import lua54

from assay.lua import Runtime
from tests.helpers import ROOT

DOC = (ROOT / "docs" / "lua.md").read_text()

LIST_FUNCTIONS = """
local function fns(prefix, t, sep, out)
  for k, v in pairs(t) do
    if type(k) == "string" and k:sub(1, 1) ~= "_" then
      if type(v) == "function" then out[#out + 1] = prefix .. sep .. k
      elseif type(v) == "table" and sep == "." and prefix == "workflow" then fns(prefix .. "." .. k, v, ".", out) end
    end
  end
  return out
end
local out = {}
for k, v in pairs(_G) do
  if PLAIN[k] == nil then
    if type(v) == "function" then out[#out + 1] = k
    elseif type(v) == "table" then fns(k, v, ".", out) end
  end
end
for k, v in pairs(os) do if PLAIN_OS[k] == nil or k == "date" or k == "exit" then out[#out + 1] = "os." .. k end end
fns("workflow", require("assay.workflow"), ".", out)
fns("ctx", require("assay.workflow.replay").Ctx, ":", out)
fns("actx", require("assay.workflow.worker").ActCtx, ":", out)
table.sort(out)
OUT = table.concat(out, " ")
"""


def documented_names() -> list[str]:
    plain = lua54.LuaRuntime()
    rt = Runtime(code=LIST_FUNCTIONS)
    g = rt.lua.globals()
    g.PLAIN = rt.lua.table_from({k.encode() if isinstance(k, str) else k: True for k in plain.globals()})
    g.PLAIN_OS = rt.lua.table_from(
        {k.encode() if isinstance(k, str) else k: True for k in plain.globals().os}
    )
    g.PLAIN[b"arg"] = True
    rt.run()
    return rt.lua.globals().OUT.decode().split()


def test_every_lua_function_is_documented():
    names = documented_names()
    # the list is what a script can call: spot-check that it really contains each family
    for expected in (
        "json.encode",
        "http.get",
        "http.client",
        "log.info",
        "sleep",
        "time",
        "env.get",
        "os.hostname",
        "crypto.uuid",
        "base64.encode",
        "fs.read",
        "yaml.parse",
        "shell.exec",
        "workflow.start",
        "workflow.schedules.trigger",
        "workflow.api_keys.generate",
        "ctx:execute_activity",
        "ctx:workflow_info",
        "actx:heartbeat",
    ):
        assert expected in names
    missing = [n for n in names if f"`{n}(" not in DOC]
    assert missing == [], f"document these in docs/lua.md: {missing}"
