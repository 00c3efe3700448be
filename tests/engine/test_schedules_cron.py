"""Table tests for the cron dialect, time zones, DST rules and the small schedule helpers (no clock reads)."""

from __future__ import annotations

from datetime import datetime

import pytest

from assay.engine.cron import CronSpec
from assay.engine.schedules import (
    fired_workflow_id,
    next_fire,
    next_fires,
    parse_cron,
    preview,
    validate_overlap_policy,
    validate_timezone,
)
from assay.errors import BadRequest
from assay.protocol import OverlapPolicy

ALL_DOW = set(range(7))


def ts(iso: str) -> float:
    """Epoch seconds of an ISO 8601 string that carries its offset."""
    return datetime.fromisoformat(iso).timestamp()


# --- parsing ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "field", "expected"),
    [
        ("0 * * * * *", "seconds", {0}),
        ("0 * * * * *", "minutes", set(range(60))),
        ("*/15 * * * * *", "seconds", {0, 15, 30, 45}),
        ("5/20 * * * * *", "seconds", {5, 25, 45}),
        ("10-20/5 * * * * *", "seconds", {10, 15, 20}),
        ("1,2,3-5,50/4 * * * * *", "seconds", {1, 2, 3, 4, 5, 50, 54, 58}),
        ("0 0 9-17/2 * * *", "hours", {9, 11, 13, 15, 17}),
        ("0 0 0 1,15 * ?", "days", {1, 15}),
        ("0 0 0 ? * *", "days", set(range(1, 32))),
        ("0 0 0 1 Jan,JULY,dec ?", "months", {1, 7, 12}),
        ("0 0 0 1 mar-May ?", "months", {3, 4, 5}),
        ("0 0 0 1 2/5 ?", "months", {2, 7, 12}),
        # upstream day-of-week: 1-7 = Sunday-Saturday, stored 0-6 with 0 = Sunday
        ("0 0 0 * * 1", "weekdays", {0}),
        ("0 0 0 * * 7", "weekdays", {6}),
        ("0 0 0 * * 2-6", "weekdays", {1, 2, 3, 4, 5}),
        ("0 0 0 * * Mon-Fri", "weekdays", {1, 2, 3, 4, 5}),
        ("0 0 0 ? * sun,SAT", "weekdays", {0, 6}),
        ("0 0 0 ? * Sunday,wednesday", "weekdays", {0, 3}),
        ("0 0 0 ? * */2", "weekdays", {0, 2, 4, 6}),
        ("0 0 0 ? * ?", "weekdays", ALL_DOW),
        # classic 5-field: dow 0-7, 0 and 7 = Sunday; seconds are 0
        ("* * * * *", "seconds", {0}),
        ("0 0 * * 0", "weekdays", {0}),
        ("0 0 * * 7", "weekdays", {0}),
        ("0 0 * * 5-7", "weekdays", {5, 6, 0}),
        ("0 0 * * mon,FRI", "weekdays", {1, 5}),
        ("0 0 * * sun", "weekdays", {0}),
        ("*/20 3 * * *", "minutes", {0, 20, 40}),
        ("*/20 3 * * *", "hours", {3}),
        # year field
        ("0 0 0 1 1 * 2027", "years", (2027,)),
        ("0 0 0 1 1 * 2027-2031/2", "years", (2027, 2029, 2031)),
        ("0 0 0 1 1 * *", "years", None),
        ("0 0 0 1 1 *", "years", None),
    ],
)
def test_parse_field_values(expr: str, field: str, expected: object) -> None:
    value = getattr(parse_cron(expr), field)
    assert (set(value) if isinstance(expected, set) else value) == expected


@pytest.mark.parametrize(
    ("shorthand", "expanded"),
    [
        ("@yearly", "0 0 0 1 1 *"),
        ("@annually", "0 0 0 1 1 *"),
        ("@monthly", "0 0 0 1 * *"),
        ("@weekly", "0 0 0 * * Sun"),
        ("@daily", "0 0 0 * * *"),
        ("@midnight", "0 0 0 * * *"),
        ("@hourly", "0 0 * * * *"),
        ("@DAILY", "0 0 0 * * *"),
        ("  @Hourly ", "0 0 * * * *"),
    ],
)
def test_shorthands(shorthand: str, expanded: str) -> None:
    a, b = parse_cron(shorthand), parse_cron(expanded)
    fields = ("seconds", "minutes", "hours", "days", "months", "weekdays", "years", "day_or")
    assert [getattr(a, f) for f in fields] == [getattr(b, f) for f in fields]


def test_day_or_rule_only_for_classic_with_both_day_fields_restricted() -> None:
    assert parse_cron("0 0 13 * 5").day_or
    assert not parse_cron("0 0 13 * *").day_or
    assert not parse_cron("0 0 * * 5").day_or
    assert not parse_cron("0 0 */2 * 5").day_or  # a field starting with '*' counts as unrestricted
    assert not parse_cron("0 0 0 13 * 6").day_or  # upstream dialect: always AND
    assert parse_cron("0 0 13 * 5").classic and not parse_cron("0 0 0 13 * 6").classic


def test_whitespace_and_spec_passthrough() -> None:
    spec = parse_cron("  0   30\t2 * * *  ")
    assert isinstance(spec, CronSpec) and spec.hours == (2,) and spec.minutes == (30,)
    assert next_fire(spec, "UTC", ts("2026-01-01T00:00:00+00:00")) == ts("2026-01-01T02:30:00+00:00")


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("0 0 0 * * 9", "day-of-week field '9': value out of range 1-7"),
        ("0 0 0 * * 0", "day-of-week field '0': value out of range 1-7"),
        ("0 0 0 * * 1,9", "day-of-week field '1,9': value '9' out of range 1-7"),
        ("0 0 * * 8", "day-of-week field '8': value out of range 0-7"),
        ("60 * * * * *", "second field '60': value out of range 0-59"),
        ("* 60 * * * *", "minute field '60': value out of range 0-59"),
        ("0 0 24 * * *", "hour field '24': value out of range 0-23"),
        ("0 0 0 32 * *", "day-of-month field '32': value out of range 1-31"),
        ("0 0 0 0 * *", "day-of-month field '0': value out of range 1-31"),
        ("0 0 0 * 13 *", "month field '13': value out of range 1-12"),
        ("0 0 0 * 0-3 *", "month field '0-3': value '0' out of range 1-12"),
        ("0 0 0 1 1 * 1969", "year field '1969': value out of range 1970-2199"),
        ("60 0 * * *", "minute field '60': value out of range 0-59"),
        ("0 24 * * *", "hour field '24': value out of range 0-23"),
        ("0 0 0 * Foo *", "month field 'Foo': invalid value 'Foo'"),
        ("0 0 0 * * Mon-Funday", "day-of-week field 'Mon-Funday': invalid value 'Funday'"),
        ("0 0 0 * * Mon,", "day-of-week field 'Mon,': empty list element"),
        ("0 0 0 * * 1,,2", "day-of-week field '1,,2': empty list element"),
        ("*/0 * * * * *", "second field '*/0': invalid step '0'"),
        ("*/x * * * * *", "second field '*/x': invalid step 'x'"),
        ("1-/2 * * * * *", "second field '1-/2': missing value"),
        ("0 0 0 5-1 * *", "day-of-month field '5-1': range '5-1' runs backwards"),
        ("0 0 0 * * Fri-Mon", "day-of-week field 'Fri-Mon': range 'Fri-Mon' runs backwards"),
        ("? * * * * *", "second field '?': '?' is only allowed in day-of-month and day-of-week"),
        ("0 0 0 L * *", "day-of-month field 'L': invalid value 'L'"),
        ("0 0 0 * * 1#2", "day-of-week field '1#2': invalid value '1#2'"),
        ("0 -5 * * * *", "minute field '-5': missing value"),
        ("0 0 0 30 2 *", "day-of-month field '30' never occurs in month field '2'"),
        ("0 0 0 31 4,6,9,11 *", "day-of-month field '31' never occurs in month field '4,6,9,11'"),
        ("0 0 30-31 Feb *", "day-of-month field '30-31' never occurs in month field 'Feb'"),
        ("* * * *", "expected 5, 6 or 7 fields, got 4"),
        ("", "expected 5, 6 or 7 fields, got 0"),
        ("0 0 0 * * 1 2026 x", "expected 5, 6 or 7 fields, got 8"),
        (
            "@fortnightly",
            "unknown shorthand '@fortnightly' (expected one of @yearly, @annually, @monthly, @weekly, "
            "@daily, @midnight, @hourly)",
        ),
    ],
)
def test_parse_errors_name_the_field(expr: str, message: str) -> None:
    with pytest.raises(BadRequest) as info:
        parse_cron(expr)
    assert info.value.status == 400
    assert info.value.message == f"invalid cron expression '{expr}': {message}"


def test_feb_29_and_day_or_30_feb_are_possible() -> None:
    assert parse_cron("0 0 0 29 2 *").days == (29,)
    # classic OR: "the 30th of February, or any Monday in February" can fire (on Mondays)
    assert next_fire("0 0 30 2 1", "UTC", ts("2026-01-01T00:00:00+00:00")) == ts("2026-02-02T00:00:00+00:00")


@pytest.mark.parametrize("bad", [None, 5, ["* * * * *"]])
def test_parse_rejects_non_strings(bad: object) -> None:
    with pytest.raises(BadRequest, match="expected a string"):
        parse_cron(bad)  # type: ignore[arg-type]


# --- next_fire in UTC ------------------------------------------------------------------------------------

NEXT_UTC = [
    # (expr, after, expected first fire)
    ("0 * * * * *", "2026-05-01T12:00:00", "2026-05-01T12:01:00"),
    ("0 * * * * *", "2026-05-01T12:00:30.5", "2026-05-01T12:01:00"),
    ("0 * * * * *", "2026-05-01T11:59:59.999", "2026-05-01T12:00:00"),
    ("* * * * * *", "2026-05-01T12:00:00", "2026-05-01T12:00:01"),
    ("* * * * * *", "2026-05-01T12:00:00.25", "2026-05-01T12:00:01"),
    ("*/5 * * * * *", "2026-05-01T12:00:03", "2026-05-01T12:00:05"),
    ("*/5 * * * * *", "2026-05-01T12:00:55", "2026-05-01T12:01:00"),
    ("0 0 2 * * *", "2026-05-01T02:00:00", "2026-05-02T02:00:00"),
    ("0 0 2 * * *", "2026-05-01T01:59:59", "2026-05-01T02:00:00"),
    ("30 15 10 * * ?", "2026-12-31T23:00:00", "2027-01-01T10:15:30"),
    ("0 0 12 ? * Mon-Fri", "2026-05-02T09:00:00", "2026-05-04T12:00:00"),  # Saturday -> Monday
    ("0 0 12 ? * 2-6", "2026-05-02T09:00:00", "2026-05-04T12:00:00"),
    ("0 0 12 ? * 7", "2026-05-02T12:00:00", "2026-05-09T12:00:00"),  # 7 = Saturday
    ("0 0 0 13 * Fri", "2026-03-14T00:00:00", "2026-11-13T00:00:00"),  # AND: Friday the 13th
    ("0 0 0 13 * 6", "2026-03-14T00:00:00", "2026-11-13T00:00:00"),
    ("0 0 0 29 2 *", "2026-03-01T00:00:00", "2028-02-29T00:00:00"),
    ("0 0 0 29 2 Mon", "2026-01-01T00:00:00", "2044-02-29T00:00:00"),
    ("0 0 0 31 * *", "2026-04-01T00:00:00", "2026-05-31T00:00:00"),
    ("0 0 0 1 1 *", "2026-06-01T00:00:00", "2027-01-01T00:00:00"),
    ("0 0 0 1 1 * 2028", "2026-06-01T00:00:00", "2028-01-01T00:00:00"),
    ("0 0 0 1 1 * 2027-2031/2", "2027-01-01T00:00:00", "2029-01-01T00:00:00"),
    ("0 0 0 * * * 2199", "2199-12-31T00:00:00", None),
    ("0 0 0 1 1 * 2020", "2026-01-01T00:00:00", None),
    ("0 0 0 29 2 * 2100", "2026-01-01T00:00:00", None),  # 2100 is not a leap year
    ("0 0 0 29 2 * 2027,2029", "2026-01-01T00:00:00", None),
    ("0 0 0 1 1 *", "2199-06-01T00:00:00", None),
    ("* * * * * *", "2300-01-01T00:00:00", None),
    ("@hourly", "2026-05-01T12:00:00", "2026-05-01T13:00:00"),
    ("@daily", "2026-05-01T12:00:00", "2026-05-02T00:00:00"),
    ("@weekly", "2026-05-01T12:00:00", "2026-05-03T00:00:00"),  # Sunday
    ("@monthly", "2026-05-01T00:00:00", "2026-06-01T00:00:00"),
    ("@yearly", "2026-05-01T00:00:00", "2027-01-01T00:00:00"),
    # classic 5-field
    ("*/10 * * * *", "2026-05-01T12:05:30", "2026-05-01T12:10:00"),
    ("30 2 * * *", "2026-05-01T03:00:00", "2026-05-02T02:30:00"),
    ("0 9 * * 1-5", "2026-05-02T09:00:00", "2026-05-04T09:00:00"),
    ("0 0 * * 7", "2026-05-01T00:00:00", "2026-05-03T00:00:00"),  # 7 = Sunday here
    ("0 0 * * 0", "2026-05-01T00:00:00", "2026-05-03T00:00:00"),
    ("0 0 13 * 5", "2026-05-01T00:00:00", "2026-05-08T00:00:00"),  # OR: Friday 8th before the 13th
    ("0 0 13 * 5", "2026-05-09T00:00:00", "2026-05-13T00:00:00"),  # OR: Wednesday the 13th
    ("0 0 13 * *", "2026-05-01T00:00:00", "2026-05-13T00:00:00"),
    ("0 0 */2 * 5", "2026-05-01T00:00:00", "2026-05-15T00:00:00"),  # '*/2' unrestricted: AND, odd Fridays
    ("0 0 1 1 *", "2026-05-01T00:00:00", "2027-01-01T00:00:00"),
]


@pytest.mark.parametrize(("expr", "after", "expected"), NEXT_UTC)
def test_next_fire_utc(expr: str, after: str, expected: str | None) -> None:
    got = next_fire(expr, "UTC", ts(after + "+00:00"))
    assert got == (None if expected is None else ts(expected + "+00:00"))
    if got is not None:
        assert got == int(got)


def test_next_fire_is_strictly_after() -> None:
    fire = ts("2026-05-01T02:00:00+00:00")
    assert next_fire("0 0 2 * * *", "UTC", fire) == fire + 86400
    assert next_fire("0 0 2 * * *", "UTC", fire - 0.001) == fire


def test_next_fires_chain_and_bounds() -> None:
    after = ts("2026-05-01T00:00:00+00:00")
    fires = next_fires("0 0 */6 * * *", "UTC", after, 5)
    assert fires == [after + 6 * 3600 * i for i in range(1, 6)]
    assert next_fires("0 0 0 1 1 * 2027-2029", "UTC", after, 5) == [
        ts("2027-01-01T00:00:00+00:00"),
        ts("2028-01-01T00:00:00+00:00"),
        ts("2029-01-01T00:00:00+00:00"),
    ]
    assert next_fires("* * * * * *", "UTC", after, 0) == []
    assert next_fires("0 0 0 1 1 * 2020", "UTC", after) == []


def test_next_fire_validates_inputs() -> None:
    with pytest.raises(BadRequest, match="day-of-week field"):
        next_fire("0 0 0 * * 8", "UTC", 0)
    with pytest.raises(BadRequest, match="invalid timezone: Nowhere/Land"):
        next_fire("0 0 0 * * *", "Nowhere/Land", 0)


def test_empty_timezone_is_utc() -> None:
    after = ts("2026-05-01T00:00:00+00:00")
    assert next_fire("@daily", "", after) == next_fire("@daily", None, after) == after + 86400


# --- time zones and DST ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tz", "canonical"),
    [
        ("UTC", "UTC"),
        ("utc", "UTC"),
        ("Utc", "UTC"),
        (None, "UTC"),
        ("", "UTC"),
        ("Europe/Berlin", "Europe/Berlin"),
        ("America/New_York", "America/New_York"),
        ("US/Eastern", "US/Eastern"),
        ("Etc/GMT+5", "Etc/GMT+5"),
        ("Etc/UTC", "Etc/UTC"),
    ],
)
def test_validate_timezone_ok(tz: str | None, canonical: str) -> None:
    assert validate_timezone(tz) == canonical


@pytest.mark.parametrize(
    "tz",
    [
        "europe/berlin",
        "EUROPE/BERLIN",
        "Mars/Olympus",
        " UTC",
        "Europe/Berlin ",
        "localtime",
        "../etc/passwd",
        "/etc/localtime",
        5,
    ],
)
def test_validate_timezone_rejects(tz: object) -> None:
    with pytest.raises(BadRequest, match="invalid timezone") as info:
        validate_timezone(tz)  # type: ignore[arg-type]
    assert info.value.status == 400


def test_dst_spring_forward_pinned_time_fires_once_after_the_gap() -> None:
    after = ts("2026-03-28T12:00:00+00:00")
    fires = next_fires("0 30 2 * * *", "Europe/Berlin", after, 3)
    assert fires == [
        ts("2026-03-29T01:00:00+00:00"),  # 03:00+02:00, the first valid instant after the gap
        ts("2026-03-30T00:30:00+00:00"),
        ts("2026-03-31T00:30:00+00:00"),
    ]
    assert preview("0 30 2 * * *", "Europe/Berlin", after, 2) == [
        "2026-03-29T03:00:00+02:00",
        "2026-03-30T02:30:00+02:00",
    ]


def test_dst_fall_back_pinned_time_fires_once_at_first_occurrence() -> None:
    after = ts("2026-10-24T12:00:00+00:00")
    assert next_fires("0 30 2 * * *", "Europe/Berlin", after, 3) == [
        ts("2026-10-25T00:30:00+00:00"),  # 02:30+02:00; the repeated 02:30+01:00 does not fire
        ts("2026-10-26T01:30:00+00:00"),
        ts("2026-10-27T01:30:00+00:00"),
    ]
    # asking from between the two 02:30s does not produce the second one either
    assert next_fire("0 30 2 * * *", "Europe/Berlin", ts("2026-10-25T00:30:00+00:00")) == ts(
        "2026-10-26T01:30:00+00:00"
    )


def test_dst_hourly_spring_forward_skips_the_missing_wall_hour() -> None:
    after = ts("2026-03-28T23:00:00+00:00")
    assert preview("0 30 * * * *", "Europe/Berlin", after, 4) == [
        "2026-03-29T00:30:00+01:00",
        "2026-03-29T01:30:00+01:00",
        "2026-03-29T03:30:00+02:00",
        "2026-03-29T04:30:00+02:00",
    ]
    fires = next_fires("0 30 * * * *", "Europe/Berlin", after, 6)
    assert [b - a for a, b in zip(fires, fires[1:], strict=False)] == [3600] * 5  # every real hour


def test_dst_hourly_fall_back_fires_both_repeated_instants() -> None:
    after = ts("2026-10-24T23:00:00+00:00")
    assert preview("0 30 * * * *", "Europe/Berlin", after, 5) == [
        "2026-10-25T01:30:00+02:00",
        "2026-10-25T02:30:00+02:00",
        "2026-10-25T02:30:00+01:00",
        "2026-10-25T03:30:00+01:00",
        "2026-10-25T04:30:00+01:00",
    ]
    fires = next_fires("0 30 * * * *", "Europe/Berlin", after, 5)
    assert [b - a for a, b in zip(fires, fires[1:], strict=False)] == [3600] * 4


def test_dst_pinned_hour_gap_times_collapse_into_one_fire() -> None:
    after = ts("2026-03-29T00:00:00+00:00")  # 01:00+01:00
    assert preview("0 */15 2 * * *", "Europe/Berlin", after, 3) == [
        "2026-03-29T03:00:00+02:00",
        "2026-03-30T02:00:00+02:00",
        "2026-03-30T02:15:00+02:00",
    ]
    # a wall time that exists (03:00) and gap times that map onto it fire once
    assert preview("0 0,30 2,3 * * *", "Europe/Berlin", after, 3) == [
        "2026-03-29T03:00:00+02:00",
        "2026-03-29T03:30:00+02:00",
        "2026-03-30T02:00:00+02:00",
    ]


def test_dst_pinned_hour_every_minute_does_not_replay_the_repeated_hour() -> None:
    after = ts("2026-10-24T23:59:59+00:00")
    fires = next_fires("0 * 2 * * *", "Europe/Berlin", after, 61)
    assert fires[:60] == [ts("2026-10-25T00:00:00+00:00") + 60 * i for i in range(60)]
    assert fires[60] == ts("2026-10-26T01:00:00+00:00")


def test_dst_sub_daily_wildcard_hour_every_15_minutes_new_york() -> None:
    after = ts("2026-11-01T05:00:00+00:00")  # 01:00-04:00
    assert preview("*/15 * * * *", "America/New_York", after, 8) == [
        "2026-11-01T01:15:00-04:00",
        "2026-11-01T01:30:00-04:00",
        "2026-11-01T01:45:00-04:00",
        "2026-11-01T01:00:00-05:00",
        "2026-11-01T01:15:00-05:00",
        "2026-11-01T01:30:00-05:00",
        "2026-11-01T01:45:00-05:00",
        "2026-11-01T02:00:00-05:00",
    ]


@pytest.mark.parametrize(
    ("expr", "tz", "after", "expected"),
    [
        (
            "0 30 2 * * *",
            "America/New_York",
            "2026-03-07T12:00:00+00:00",
            ["2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00"],
        ),
        (
            "30 1 * * *",
            "America/New_York",
            "2026-10-31T12:00:00+00:00",
            ["2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"],
        ),
        # midnight itself is skipped / repeated in Havana
        (
            "@daily",
            "America/Havana",
            "2026-03-07T12:00:00+00:00",
            ["2026-03-08T01:00:00-04:00", "2026-03-09T00:00:00-04:00"],
        ),
        (
            "@daily",
            "America/Havana",
            "2026-10-31T12:00:00+00:00",
            ["2026-11-01T00:00:00-04:00", "2026-11-02T00:00:00-05:00"],
        ),
        (
            "0 0 * * * *",
            "America/Havana",
            "2026-11-01T02:30:00+00:00",
            [
                "2026-10-31T23:00:00-04:00",
                "2026-11-01T00:00:00-04:00",
                "2026-11-01T00:00:00-05:00",
                "2026-11-01T01:00:00-05:00",
            ],
        ),
        # half-hour DST shift (Lord Howe)
        (
            "0 15 2 * * *",
            "Australia/Lord_Howe",
            "2026-10-03T00:00:00+00:00",
            ["2026-10-04T02:30:00+11:00", "2026-10-05T02:15:00+11:00"],
        ),
        (
            "0 45 1 * * *",
            "Australia/Lord_Howe",
            "2026-04-04T00:00:00+00:00",
            ["2026-04-05T01:45:00+11:00", "2026-04-06T01:45:00+10:30"],
        ),
        (
            "0 45 * * * *",
            "Australia/Lord_Howe",
            "2026-04-04T13:00:00+00:00",
            [
                "2026-04-05T00:45:00+11:00",
                "2026-04-05T01:45:00+11:00",
                "2026-04-05T01:45:00+10:30",
                "2026-04-05T02:45:00+10:30",
            ],
        ),
        # Samoa skipped 2011-12-30 entirely: pinned times that day fire at the first instant after it
        (
            "0 0 12 * * *",
            "Pacific/Apia",
            "2011-12-28T12:00:00+00:00",
            [
                "2011-12-28T12:00:00-10:00",
                "2011-12-29T12:00:00-10:00",
                "2011-12-31T00:00:00+14:00",
                "2011-12-31T12:00:00+14:00",
            ],
        ),
        (
            "0 0 * * * *",
            "Pacific/Apia",
            "2011-12-30T08:00:00+00:00",
            ["2011-12-29T23:00:00-10:00", "2011-12-31T00:00:00+14:00", "2011-12-31T01:00:00+14:00"],
        ),
        # fixed-offset zones
        (
            "0 0 9 * * *",
            "Etc/GMT+5",
            "2026-05-01T00:00:00+00:00",
            ["2026-05-01T09:00:00-05:00", "2026-05-02T09:00:00-05:00"],
        ),
        (
            "0 0 9 * * *",
            "Asia/Kolkata",
            "2026-05-01T00:00:00+00:00",
            ["2026-05-01T09:00:00+05:30", "2026-05-02T09:00:00+05:30"],
        ),
    ],
)
def test_dst_preview_table(expr: str, tz: str, after: str, expected: list[str]) -> None:
    got = preview(expr, tz, ts(after), len(expected))
    assert got == expected
    assert next_fires(expr, tz, ts(after), len(expected)) == [ts(s) for s in expected]


def test_local_fields_are_matched_in_the_zone() -> None:
    # Monday 00:30 in Tokyo is Sunday 15:30 UTC
    after = ts("2026-05-01T00:00:00+00:00")
    assert preview("0 30 0 ? * Mon", "Asia/Tokyo", after, 1) == ["2026-05-04T00:30:00+09:00"]
    assert next_fire("0 30 0 ? * Mon", "Asia/Tokyo", after) == ts("2026-05-03T15:30:00+00:00")


# --- overlap policy and ids -------------------------------------------------------------------------------


@pytest.mark.parametrize("policy", list(OverlapPolicy))
def test_overlap_policies_accepted(policy: str) -> None:
    assert validate_overlap_policy(policy) == policy


def test_overlap_policies_are_the_four() -> None:
    assert [p.value for p in OverlapPolicy] == ["skip", "queue", "cancel_old", "allow_all"]


@pytest.mark.parametrize("policy", ["Skip", "SKIP", "", "none", "allow-all", " skip", None, 1])
def test_overlap_policy_rejects(policy: object) -> None:
    with pytest.raises(BadRequest, match="invalid overlap_policy") as info:
        validate_overlap_policy(policy)  # type: ignore[arg-type]
    assert info.value.status == 400


def test_fired_workflow_id() -> None:
    assert fired_workflow_id("nightly", ts("2026-03-29T01:00:00+00:00")) == "nightly-20260329T010000Z"
    assert fired_workflow_id("nightly", ts("2026-03-29T01:00:00+00:00") + 0.9) == "nightly-20260329T010000Z"
    assert fired_workflow_id("a-b", ts("2026-12-31T23:59:59+00:00")) == "a-b-20261231T235959Z"
    second = ts("2026-03-29T01:00:01+00:00")
    assert fired_workflow_id("x", second) != fired_workflow_id("x", second - 1)
