"""Commands are a registry: one Handler per command type, parsing into the protocol's typed records."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

from assay import protocol
from assay.engine import commands
from assay.errors import BadRequest

ENGINE = Path(commands.__file__).resolve().parent


def test_every_command_type_has_exactly_one_handler_and_record() -> None:
    assert set(commands.COMMANDS) == set(protocol.CommandType)
    assert set(protocol.COMMAND_RECORDS) == set(protocol.CommandType)
    for t, handler in commands.COMMANDS.items():
        assert handler.record is protocol.COMMAND_RECORDS[t]


@pytest.mark.parametrize(
    "raw",
    [
        {"type": "ScheduleActivity", "seq": 1, "name": "a", "max_attempts": 2},
        {"type": "ScheduleTimer", "seq": 2, "duration_secs": 1.5},
        {"type": "WaitForSignal", "name": "go", "timer_seq": 3},
        {"type": "RecordSideEffect", "seq": 1, "name": "n", "value": {"v": 1}},
        {"type": "StartChildWorkflow", "workflow_type": "C", "workflow_id": "c-1"},
        {"type": "UpsertSearchAttributes", "patch": {"k": "v"}},
        {"type": "ContinueAsNew", "input": [1], "workflow_id": "next"},
        {"type": "RecordSnapshot", "state": {"q": 1}},
        {"type": "CompleteWorkflow", "result": 5},
        {"type": "FailWorkflow", "error": "bad"},
        {"type": "CancelWorkflow", "reason": "stop"},
    ],
    ids=lambda r: r["type"],
)
def test_parse_gives_the_typed_record_and_round_trips(raw) -> None:
    rec = commands.parse_command(0, raw)
    assert type(rec) is protocol.COMMAND_RECORDS[protocol.CommandType(raw["type"])]
    assert dataclasses.is_dataclass(rec)
    assert rec.to_wire() == raw  # what a worker sends is what the record writes


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"type": "Nope"}, "command 3: unknown command type 'Nope'"),
        ({"type": "scheduletimer", "seq": 1}, "command 3: unknown command type 'scheduletimer'"),
        ({"seq": 1}, "command 3: missing 'type'"),
        ("x", "command 3: must be a JSON object"),
        ({"type": "ScheduleTimer"}, "command 3: missing required field 'seq'"),
        ({"type": "UpsertSearchAttributes", "patch": []}, "command 3: 'patch' must be a JSON object"),
    ],
)
def test_bad_commands_name_the_command_and_field(raw, message) -> None:
    with pytest.raises(BadRequest) as info:
        commands.parse_command(3, raw)
    assert info.value.message == message
    assert info.value.detail["command_index"] == 3


def test_no_if_chain_over_command_types_and_no_type_ignores_in_the_engine() -> None:
    """The registry replaced the parallel if-chains; the services call each other explicitly."""
    for path in sorted(ENGINE.glob("*.py")):
        text = path.read_text(encoding="utf-8")
        assert "# type: ignore" not in text, path
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Compare) and any(
                isinstance(c, ast.Attribute) and getattr(c.value, "id", "") == "CommandType"
                for c in [node.left, *node.comparators]
            ):
                pytest.fail(f"{path.name}:{node.lineno} compares against a CommandType: use the registry")


def test_services_do_not_inherit_from_each_other() -> None:
    from assay.engine import Engine
    from assay.engine.core import Service

    e_bases = Engine.__mro__
    assert Service not in e_bases  # the facade composes services, it is not one
    for cls in Service.__subclasses__():
        assert cls.__bases__ == (Service,), cls
