-- The assay Lua stdlib: builds the globals (json, http, log, env, fs, ...) on top of the Python
-- natives and installs the module searcher. Loaded once per Lua state by assay/lua/runtime.py.
-- Internal; scripts never require this file.
local N, load_module, script_dir = ...

local pack, unpack, select, type, pairs, ipairs, tostring, error = table.pack, table.unpack, select, type,
  pairs, ipairs, tostring, error
local sfmt, concat, sort = string.format, table.concat, table.sort
local mtype = math.type

-- Natives answer (true, values...) or (false, message). `check` turns the latter into error(message, 2):
-- callers reach it through tail calls, so level 2 is the user's frame and the message gets its file:line.
local function check(ok, ...)
  if not ok then error((...), 2) end
  return ...
end
local function native(name)
  local f = N[name]
  assert(f, "missing native " .. name)
  return function(...) return check(f(...)) end
end

-- Hidden from scripts: lupa's bridge table.
python = nil

---------------------------------------------------------------------------------------------------
-- json
---------------------------------------------------------------------------------------------------
local json = {}
local JSON_TYPE = "__jsontype"
local null_mt = { __tostring = function() return "null" end, [JSON_TYPE] = "null" }
json.null = setmetatable({}, null_mt)

function json.object(t) return setmetatable(t or {}, { [JSON_TYPE] = "object" }) end
function json.array(t) return setmetatable(t or {}, { [JSON_TYPE] = "array" }) end

local escapes = { ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f", ["\n"] = "\\n",
  ["\r"] = "\\r", ["\t"] = "\\t" }
for i = 0, 31 do
  local c = string.char(i)
  if not escapes[c] then escapes[c] = sfmt("\\u%04x", i) end
end
escapes["\127"] = "\\u007f"

local EncodeError = {}

local function path_of(stack)
  local out = { "$" }
  for _, k in ipairs(stack) do
    if mtype(k) == "integer" then out[#out + 1] = "[" .. k .. "]" else out[#out + 1] = "." .. tostring(k) end
  end
  return concat(out)
end

local function fail(stack, msg) error({ [EncodeError] = true, msg = msg .. " at " .. path_of(stack) }, 0) end

local function encode_string(s, stack)
  if not utf8.len(s) then fail(stack, "string is not valid UTF-8") end
  return '"' .. s:gsub('[%c"\\]', escapes) .. '"'
end

local function encode_number(v, stack)
  if mtype(v) == "integer" then return sfmt("%d", v) end
  if v ~= v or v == math.huge or v == -math.huge then fail(stack, "cannot encode " .. tostring(v)) end
  if v == math.floor(v) and v > -1e15 and v < 1e15 then return sfmt("%.1f", v) end
  local s = sfmt("%.14g", v)
  if tonumber(s) ~= v then s = sfmt("%.17g", v) end
  return s
end

local encode_value

local function encode_table(t, buf, seen, stack)
  if seen[t] then fail(stack, "cyclic table") end
  local mt = getmetatable(t)
  local kind = mt and rawget(mt, JSON_TYPE)
  if kind == "null" then buf[#buf + 1] = "null"; return end
  seen[t] = true
  local n, maxk, allint = 0, 0, true
  for k in pairs(t) do
    n = n + 1
    if mtype(k) == "integer" and k > 0 then
      if k > maxk then maxk = k end
    else
      allint = false
    end
  end
  local depth = #stack + 1
  if kind == "array" or (kind ~= "object" and allint and maxk == n and (n > 0 or kind == nil)) then
    if kind == "array" then n = maxk end
    buf[#buf + 1] = "["
    for i = 1, n do
      if i > 1 then buf[#buf + 1] = "," end
      stack[depth] = i
      local v = rawget(t, i)
      if v == nil then buf[#buf + 1] = "null" else encode_value(v, buf, seen, stack) end
    end
    stack[depth] = nil
    buf[#buf + 1] = "]"
  else
    local keys = {}
    for k in pairs(t) do
      local tk = type(k)
      if tk == "string" then
        keys[#keys + 1] = k
      elseif tk == "number" then
        keys[#keys + 1] = encode_number(k, stack):gsub("%.0$", "")
      else
        fail(stack, "cannot encode a " .. tk .. " key")
      end
    end
    sort(keys)
    buf[#buf + 1] = "{"
    for i, sk in ipairs(keys) do
      local v = rawget(t, sk)
      if v == nil then v = rawget(t, tonumber(sk)) end
      if i > 1 then buf[#buf + 1] = "," end
      stack[depth] = sk
      buf[#buf + 1] = encode_string(sk, stack)
      buf[#buf + 1] = ":"
      encode_value(v, buf, seen, stack)
    end
    stack[depth] = nil
    buf[#buf + 1] = "}"
  end
  seen[t] = nil
end

encode_value = function(v, buf, seen, stack)
  local tv = type(v)
  if tv == "string" then
    buf[#buf + 1] = encode_string(v, stack)
  elseif tv == "number" then
    buf[#buf + 1] = encode_number(v, stack)
  elseif tv == "boolean" then
    buf[#buf + 1] = v and "true" or "false"
  elseif tv == "nil" then
    buf[#buf + 1] = "null"
  elseif tv == "table" then
    encode_table(v, buf, seen, stack)
  else
    fail(stack, "cannot encode a " .. tv .. " value")
  end
end

local parse_native = N["json.parse"]
local pretty_native = N["json.pretty"]

-- json.encode(value, opts?) -> string. opts.pretty = true indents with two spaces.
function json.encode(v, opts)
  local buf = {}
  local ok, err = pcall(encode_value, v, buf, {}, {})
  if not ok then
    if type(err) == "table" and err[EncodeError] then error("json.encode: " .. err.msg, 2) end
    error(err, 0)
  end
  local s = concat(buf)
  if type(opts) == "table" and opts.pretty then return check(pretty_native(s)) end
  return s
end

function json.parse(s)
  if type(s) ~= "string" then error("json.parse: expected a string, got " .. type(s), 2) end
  return check(parse_native(s))
end
json.decode = json.parse
_G.json = json

---------------------------------------------------------------------------------------------------
-- log, time, sleep
---------------------------------------------------------------------------------------------------
local log_native, log_enabled = N["log"], N["log.enabled"]

local function fmt_args(...)
  local n = select("#", ...)
  local parts = {}
  for i = 1, n do
    local v = select(i, ...)
    if type(v) == "table" and getmetatable(v) == nil then
      local ok, s = pcall(json.encode, v)
      parts[i] = ok and s or tostring(v)
    else
      parts[i] = tostring(v)
    end
  end
  return concat(parts, " ")
end

local log = {}
for _, level in ipairs({ "debug", "info", "warn", "error" }) do
  log[level] = function(...)
    local _, on = log_enabled(level)
    if on then check(log_native(level, nil, fmt_args(...))) end
  end
end
_G.log = log

time = native("time")
sleep = native("sleep")

---------------------------------------------------------------------------------------------------
-- env, os
---------------------------------------------------------------------------------------------------
env = { get = native("env.get"), set = native("env.set"), list = native("env.list") }

os.hostname = native("os.hostname")
os.arch = native("os.arch")
os.platform = native("os.platform")
os.pid = native("os.pid")
local flush = native("flush")
local c_date, c_exit = os.date, os.exit
-- os.date(fmt?, t?, tz_offset_hours?): with an offset, the time is rendered in that fixed zone.
function os.date(f, t, tz)
  if tz == nil then return c_date(f, t) end
  if type(tz) ~= "number" then error("os.date: tz_offset_hours must be a number", 2) end
  f = f or "%c"
  if f:sub(1, 1) == "!" then f = f:sub(2) end
  return c_date("!" .. f, (t or os.time()) + math.floor(tz * 3600 + 0.5))
end
function os.exit(code, close)
  flush()
  io.stdout:flush()
  return c_exit(code, close)
end
io.stdout:setvbuf("line")
-- Let Python see Ctrl-C even while Lua spins in a loop that calls nothing (coroutines inherit it).
local tick_native = N["_tick"]
debug.sethook(function() tick_native() end, "", 1000000)

---------------------------------------------------------------------------------------------------
-- crypto, base64, fs, yaml, shell
---------------------------------------------------------------------------------------------------
crypto = {
  hash = native("crypto.hash"),
  hmac = native("crypto.hmac"),
  random = native("crypto.random"),
  random_bytes = native("crypto.random_bytes"),
  uuid = native("crypto.uuid"),
}
base64 = {
  encode = native("base64.encode"),
  decode = native("base64.decode"),
  url_encode = native("base64.url_encode"),
  url_decode = native("base64.url_decode"),
}
fs = {}
for _, f in ipairs({ "read", "write", "append", "exists", "is_dir", "list", "mkdir", "remove" }) do
  fs[f] = native("fs." .. f)
end

local yaml_encode = N["yaml.encode"]
yaml = { parse = native("yaml.parse") }
function yaml.encode(v)
  local ok, s = pcall(json.encode, v)
  if not ok then error((tostring(s):gsub("^json%.encode", "yaml.encode")), 2) end
  return check(yaml_encode(s))
end

shell = { exec = native("shell.exec") }

---------------------------------------------------------------------------------------------------
-- http
---------------------------------------------------------------------------------------------------
local http_native, http_client_native = N["http"], N["http.client"]

local function has_header(h, name)
  for k in pairs(h) do
    if type(k) == "string" and k:lower() == name then return true end
  end
  return false
end

local function request(handle, method, url, body, opts)
  if type(url) ~= "string" then error("http." .. method:lower() .. ": url must be a string", 2) end
  if opts ~= nil and type(opts) ~= "table" then error("http." .. method:lower() .. ": opts must be a table", 2) end
  opts = opts or {}
  local headers = {}
  if type(opts.headers) == "table" then
    for k, v in pairs(opts.headers) do headers[tostring(k)] = tostring(v) end
  end
  if type(body) == "table" then
    local ok, s = pcall(json.encode, body)
    if not ok then error((tostring(s):gsub("^json%.encode", "http." .. method:lower())), 2) end
    body = s
    if not has_header(headers, "content-type") then headers["Content-Type"] = "application/json" end
  elseif body ~= nil and type(body) ~= "string" then
    body = tostring(body)
  end
  local on_event = opts.on_event
  if on_event ~= nil and type(on_event) ~= "function" then
    error("http." .. method:lower() .. ": on_event must be a function", 2)
  end
  return check(http_native(handle, method, url, body, { headers = headers, timeout = opts.timeout }, on_event))
end

local function make_client(handle)
  local c = {}
  local function bodyless(m)
    return function(a, b, cc)
      if a == c then return request(handle, m, b, nil, cc) end
      return request(handle, m, a, nil, b)
    end
  end
  local function with_body(m)
    return function(a, b, cc, d)
      if a == c then return request(handle, m, b, cc, d) end
      return request(handle, m, a, b, cc)
    end
  end
  c.get, c.delete, c.head = bodyless("GET"), bodyless("DELETE"), bodyless("HEAD")
  c.post, c.put, c.patch = with_body("POST"), with_body("PUT"), with_body("PATCH")
  c.request = function(a, ...)
    if a == c then return request(handle, ...) end
    return request(handle, a, ...)
  end
  return c
end

http = make_client(nil)
function http.client(opts)
  if opts ~= nil and type(opts) ~= "table" then error("http.client: opts must be a table", 2) end
  return make_client(check(http_client_native(opts or {})))
end

---------------------------------------------------------------------------------------------------
-- require: modules next to the script, and assay.* modules shipped inside the package
---------------------------------------------------------------------------------------------------
if script_dir then
  package.path = script_dir .. "/?.lua;" .. script_dir .. "/?/init.lua;" .. package.path
end

local function assay_searcher(name)
  if name:sub(1, 6) ~= "assay." then return nil end
  local src, chunkname = load_module(name)
  if not src then return "\n\tno embedded module '" .. name .. "'" end
  local chunk, err = load(src, chunkname, "t")
  if not chunk then error("error loading module '" .. name .. "':\n\t" .. err, 0) end
  return chunk, chunkname
end
table.insert(package.searchers, 2, assay_searcher)

-- Internal natives for the assay.* modules (not a documented API).
local internal = {}
for name, f in pairs(N) do
  if name:sub(1, 1) == "_" then internal[name:sub(2)] = f end
end
internal.check = check
internal.log = N["log"]
package.preload["assay._native"] = function() return internal end

---------------------------------------------------------------------------------------------------
-- Script entry: run a chunk with a message handler that keeps the traceback.
---------------------------------------------------------------------------------------------------
local function errtext(e)
  if type(e) == "string" then return e end
  local mt = getmetatable(e)
  if mt and mt.__tostring then return tostring(e) end
  if type(e) == "table" then
    if type(e.message) == "string" then return e.message end
    local ok, s = pcall(json.encode, e)
    if ok then return "(error object) " .. s end
  end
  return "(error object is a " .. type(e) .. " value)"
end
internal.errtext = errtext

return function(src, chunkname, argv, script_name)
  arg = { [0] = script_name, [-1] = "assay" }
  for i, a in ipairs(argv) do arg[i] = a end
  local chunk, err = load(src, chunkname, "t")
  if not chunk then return false, err, nil, nil end
  local tb
  local raw_err
  local ok = xpcall(chunk, function(e)
    raw_err = e
    tb = debug.traceback(nil, 2)
    return e
  end, unpack(argv))
  io.stdout:flush()
  if ok then return true end
  if type(raw_err) == "table" and rawget(raw_err, "__assay_replica_done") then return true end
  if type(raw_err) == "table" and rawget(raw_err, "__assay_replay_loaded") then return true end
  if type(raw_err) == "userdata" then return false, errtext(raw_err), tb, raw_err end
  return false, errtext(raw_err), tb, nil
end
