"""json.encode / json.parse: arrays vs objects, null handling, numbers, strings, errors."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assay.lua import Runtime, ScriptError


def enc(lua, expr: str) -> str:
    return lua(f"OUT = json.encode({expr})").get("OUT")


@pytest.mark.parametrize(
    "expr, expected",
    [
        ("{1, 2, 3}", "[1,2,3]"),
        ("{}", "[]"),
        ("json.object()", "{}"),
        ("json.object({})", "{}"),
        ("json.array({})", "[]"),
        ("{a = 1, b = {x = true}}", '{"a":1,"b":{"x":true}}'),
        ("{b = 1, a = 2, c = 3}", '{"a":2,"b":1,"c":3}'),
        ("{[1] = 'a', [3] = 'c'}", '{"1":"a","3":"c"}'),
        ("json.array({[1] = 'a', [3] = 'c'})", '["a",null,"c"]'),
        ("{1, 2, x = 3}", '{"1":1,"2":2,"x":3}'),
        ("{[2.5] = 'f'}", '{"2.5":"f"}'),
        ("{json.null, 1}", "[null,1]"),
        ("json.null", "null"),
        ("nil", "null"),
        ("1.5", "1.5"),
        ("3.0", "3.0"),
        ("0.1", "0.1"),
        ("1e300", "1e+300"),
        ("-7", "-7"),
        ("math.maxinteger", "9223372036854775807"),
        ("'he said \"hi\"\\n\\t\\\\'", '"he said \\"hi\\"\\n\\t\\\\"'),
        ("'\\1\\127'", '"\\u0001\\u007f"'),
        ("'héllo ✓'", '"héllo ✓"'),
        ("true", "true"),
    ],
)
def test_encode(lua, expr, expected):
    assert enc(lua, expr) == expected


@pytest.mark.parametrize(
    "expr, message",
    [
        ("{f = function() end}", "json.encode: cannot encode a function value at $.f"),
        (
            "{steps = {{name = 'a'}, {run = coroutine.create(print)}}}",
            "cannot encode a thread value at $.steps[2].run",
        ),
        ("0/0", "cannot encode"),
        ("math.huge", "cannot encode inf"),
        ("{[true] = 1}", "cannot encode a boolean key"),
        ("'\\255\\254'", "string is not valid UTF-8"),
    ],
)
def test_encode_errors(lua, expr, message):
    with pytest.raises(ScriptError) as e:
        lua(f"json.encode({expr})")
    assert message in e.value.message
    assert e.value.message.startswith("(command line):1: json.encode:")


def test_encode_cyclic_table_is_a_clear_error(lua):
    with pytest.raises(ScriptError) as e:
        lua("local t = {a = {}}; t.a.back = t; json.encode(t)")
    assert e.value.message == "(command line):1: json.encode: cyclic table at $.a.back"
    # a table shared twice (not a cycle) is fine
    assert lua("local s = {1}; OUT = json.encode({s, s})").get("OUT") == "[[1],[1]]"


def test_pretty(lua):
    out = lua("OUT = json.encode({a = {1, 2}}, {pretty = true})").get("OUT")
    assert out == '{\n  "a": [\n    1,\n    2\n  ]\n}'


def test_parse(lua):
    r = lua("""
      local v = json.parse('{"a": [10, 20, {"b": null}], "n": null, "s": "x\\\\u00e9", "f": 1.5, "i": 3, "t": true}')
      OUT = { v.a[1], v.a[2], #v.a, v.a[3].b == nil, v.n == nil, v.s, v.f, math.type(v.i), v.t,
              json.parse('null') == nil, json.parse('"str"'), json.parse('[]')[1] == nil,
              json.decode('[1]')[1], json.parse('12345678901234567890') }
    """)
    assert r.get("OUT") == [
        10,
        20,
        3,
        True,
        True,
        "xé",
        1.5,
        "integer",
        True,
        True,
        "str",
        True,
        1,
        1.2345678901234567e19,
    ]


@pytest.mark.parametrize("text", ["{", "[1,]", "", "nul", "{'a': 1}"])
def test_parse_errors(lua, text):
    with pytest.raises(ScriptError) as e:
        lua(f"json.parse({json.dumps(text)})")
    assert e.value.message.startswith("(command line):1: json.parse: ")


def test_parse_rejects_non_strings(lua):
    with pytest.raises(ScriptError) as e:
        lua("json.parse(nil)")
    assert e.value.message == "(command line):1: json.parse: expected a string, got nil"


json_values = st.recursive(
    st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, min_size=1, max_size=5)
        | st.dictionaries(st.text(min_size=1), children, min_size=1, max_size=5)
    ),
    max_leaves=20,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(json_values)
def test_roundtrip_through_lua(value):
    rt = Runtime(code="OUT = json.encode(json.parse(arg[1]))", args=[json.dumps(value)])
    rt.run()
    out = rt.lua.globals().OUT.decode()
    back = json.loads(out)
    # dict keys that look like 1..n integers decode to arrays in Lua; compare through a normaliser
    assert normalise(back) == normalise(value)


def normalise(v):
    if isinstance(v, dict):
        keys = list(v)
        if (
            keys
            and sorted(keys, key=str) == [str(i) for i in range(1, len(keys) + 1)]
            or keys == [str(i) for i in range(1, len(keys) + 1)]
        ):
            return [normalise(v[str(i)]) for i in range(1, len(keys) + 1)]
        return {k: normalise(x) for k, x in v.items()}
    if isinstance(v, list):
        return [normalise(x) for x in v]
    if isinstance(v, float) and v == int(v) and abs(v) < 2**53:
        return float(v)
    return v
