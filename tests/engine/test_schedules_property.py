"""Property tests: next_fire against a brute-force reference that walks real instants one by one.

The generator builds each field from parts whose value sets it computes itself, so the reference does not
reuse the parser. The reference applies the documented DST rule directly: a wall time matches when its
fields match; when the hour field pins hours, the second occurrence of a repeated wall time (zoneinfo's
``fold == 1``) does not fire, and a gap whose skipped wall times contain a match fires at the first
instant after the gap. Fixed epoch inputs only; windows are bounded so the whole file runs in seconds.
"""

from __future__ import annotations

import io
import math
import struct
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assay.engine.cron import parse_cron
from assay.engine.schedules import _next, next_fire, next_fires, preview
from assay.errors import BadRequest

NAIVE_EPOCH = datetime(1970, 1, 1)
MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]


def _tzif(posix_tz: str) -> bytes:
    """A TZif v2 file with no transitions: the POSIX footer rule applies at all times (RFC 8536)."""
    header = b"TZif2" + b"\0" * 15 + struct.pack(">6l", 0, 0, 0, 0, 1, 4)
    body = struct.pack(">lBB", 3600, 0, 0) + b"AAA\0"
    return header + body + header + body + b"\n" + posix_tz.encode() + b"\n"


# Synthetic zone whose fall-back overlap crosses midnight (00:30+02:00 -> 23:30+01:00 the day before), so
# the next date's first wall times come before the previous date's repeated ones. No real zone does this.
MIDNIGHT_FOLD = ZoneInfo.from_file(
    io.BytesIO(_tzif("AAA-1BBB-2,M3.5.0/0:30,M10.5.0/0:30")), key="Test/MidnightFold"
)


def _ts(iso: str) -> int:
    return int(datetime.fromisoformat(iso).timestamp())


# zone key -> (zone, scan window); start times are drawn inside the window
ZONES: dict[str, tuple[ZoneInfo, int, int]] = {
    name: (ZoneInfo(name), _ts("2026-01-01T00:00:00+00:00"), _ts("2027-01-01T00:00:00+00:00"))
    for name in ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "America/Havana"]
}
# Samoa skipped 2011-12-30 (a 24-hour gap) and fell back on 2012-04-01
ZONES["Pacific/Apia"] = (
    ZoneInfo("Pacific/Apia"),
    _ts("2011-09-01T00:00:00+00:00"),
    _ts("2012-06-01T00:00:00+00:00"),
)
ZONES["Test/MidnightFold"] = (
    MIDNIGHT_FOLD,
    _ts("2026-01-01T00:00:00+00:00"),
    _ts("2027-01-01T00:00:00+00:00"),
)
ZONE_KEYS = sorted(ZONES)
DST_KEYS = [k for k in ZONE_KEYS if k != "UTC"]


def _offset(zone: ZoneInfo, t: int) -> int:
    off = datetime.fromtimestamp(t, zone).utcoffset()
    assert off is not None
    return int(off.total_seconds())


def _transitions(key: str) -> list[int]:
    """Offset changes inside the zone's window, found by an hourly scan then a second-by-second walk."""
    zone, lo, hi = ZONES[key]
    out = []
    prev = _offset(zone, lo)
    for t in range(lo, hi, 3600):
        if _offset(zone, t) != prev:
            u = t - 3600
            while _offset(zone, u) == prev:
                u += 1
            out.append(u)
            prev = _offset(zone, u)
    return out


TRANSITIONS = {key: _transitions(key) for key in ZONE_KEYS}
assert TRANSITIONS["UTC"] == [] and all(len(TRANSITIONS[k]) >= 2 for k in DST_KEYS), TRANSITIONS


def _affected_hours(key: str, e: int) -> set[int]:
    """Local hours of the wall times skipped or repeated at the offset change at instant ``e``."""
    zone = ZONES[key][0]
    a, b = _offset(zone, e - 1), _offset(zone, e)
    return {(NAIVE_EPOCH + timedelta(seconds=w)).hour for w in range(e + min(a, b), e + max(a, b), 60)}


def fire(text: str, key: str, after: float) -> float | None:
    if key.startswith("Test/"):  # not a tz-database name: drive the internal search with the zone object
        got = _next(parse_cron(text), ZONES[key][0], math.floor(after) + 1)
        return None if got is None else float(got)
    return next_fire(text, key, after)


@dataclass
class Expr:
    text: str
    seconds: set[int]
    minutes: set[int]
    hours: set[int]
    doms: set[int]
    months: set[int]
    dows: set[int]  # 0 = Sunday
    years: set[int] | None
    day_or: bool

    def date_ok(self, d: datetime) -> bool:
        if d.month not in self.months or (self.years is not None and d.year not in self.years):
            return False
        dom, dow = d.day in self.doms, d.isoweekday() % 7 in self.dows
        return (dom or dow) if self.day_or else (dom and dow)

    def wall_ok(self, d: datetime) -> bool:
        return (
            d.second in self.seconds and d.minute in self.minutes and d.hour in self.hours and self.date_ok(d)
        )


@st.composite
def field(
    draw: st.DrawFn, lo: int, hi: int, star: int = 3, names: list[str] | None = None, base: int = 0
) -> tuple[str, set[int]]:
    """(text, values). ``names[i]`` spells value ``base + i``; ``star`` weights a bare '*'."""
    if draw(st.integers(0, 9)) < star:
        return "*", set(range(lo, hi + 1))

    def spell(v: int) -> str:
        if names is not None and v - base < len(names) and draw(st.booleans()):
            name = names[v - base]
            return draw(st.sampled_from([name, name.upper(), name.capitalize()]))
        return str(v)

    texts, values = [], set()
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["value", "range", "step_star", "step_from", "step_range"]))
        a = draw(st.integers(lo, hi))
        b = draw(st.integers(a, hi))
        n = draw(st.integers(1, max(1, (hi - lo + 1) // 2)))
        if kind == "value":
            texts.append(spell(a))
            values.add(a)
        elif kind == "range":
            texts.append(f"{spell(a)}-{spell(b)}")
            values.update(range(a, b + 1))
        elif kind == "step_star":
            texts.append(f"*/{n}")
            values.update(range(lo, hi + 1, n))
        elif kind == "step_from":
            texts.append(f"{spell(a)}/{n}")
            values.update(range(a, hi + 1, n))
        else:
            texts.append(f"{spell(a)}-{spell(b)}/{n}")
            values.update(range(a, b + 1, n))
    return ",".join(texts), values


@st.composite
def upstream_expr(draw: st.DrawFn, single_second: bool) -> Expr:
    """6/7-field expression; dense enough to fire inside the reference window most of the time."""
    if single_second:
        s = draw(st.integers(0, 59))
        sec = (str(s), {s})
    else:
        sec = draw(field(0, 59, star=2))
    minute = draw(field(0, 59, star=4 if single_second else 6))
    hour = draw(field(0, 23, star=5 if single_second else 7))
    dom_text, doms = (
        draw(st.sampled_from([("*", set(range(1, 32))), ("?", set(range(1, 32)))]))
        if draw(st.integers(0, 9)) < 7
        else draw(field(1, 31, star=0))
    )
    month = draw(field(1, 12, star=8, names=MONTHS, base=1))
    if draw(st.integers(0, 9)) < 7:
        dow_text, dows_1 = draw(st.sampled_from(["*", "?"])), set(range(1, 8))
    else:
        dow_text, dows_1 = draw(field(1, 7, star=0, names=DAYS, base=1))
    year_text, years = draw(
        st.sampled_from(
            [
                (None, None),
                ("*", None),
                ("2026", {2026}),
                ("2025,2027", {2025, 2027}),
                ("2026-2030/2", {2026, 2028, 2030}),
            ]
        )
    )
    parts = [sec[0], minute[0], hour[0], dom_text, month[0], dow_text] + ([year_text] if year_text else [])
    return Expr(
        " ".join(parts), sec[1], minute[1], hour[1], doms, month[1], {v - 1 for v in dows_1}, years, False
    )


@st.composite
def classic_expr(draw: st.DrawFn) -> Expr:
    minute = draw(field(0, 59, star=4))
    hour = draw(field(0, 23, star=5))
    dom = draw(field(1, 31, star=5))
    month = draw(field(1, 12, star=8, names=MONTHS, base=1))
    dow = draw(field(0, 7, star=5, names=DAYS, base=0))
    day_or = not dom[0].startswith("*") and not dow[0].startswith("*")
    text = " ".join([minute[0], hour[0], dom[0], month[0], dow[0]])
    return Expr(text, {0}, minute[1], hour[1], dom[1], month[1], {v % 7 for v in dow[1]}, None, day_or)


@st.composite
def start_time(draw: st.DrawFn, key: str, window: int) -> float:
    """A start inside the zone's window, or just before one of its offset changes (the window spans it)."""
    frac = draw(st.sampled_from([0.0, 0.5, 0.999]))
    if TRANSITIONS[key] and draw(st.booleans()):
        t = draw(st.sampled_from(TRANSITIONS[key]))
        return t - draw(st.integers(1, window)) + frac
    return draw(st.integers(ZONES[key][1], ZONES[key][2])) + frac


def reference(expr: Expr, key: str, after: float, window: int) -> tuple[int | None, int]:
    """First fire in (after, floor(after) + window] by walking instants; returns (fire or None, last instant)."""
    zone = ZONES[key][0]
    pinned = len(expr.hours) < 24
    start = math.floor(after) + 1
    end = start + window
    step = 60 if len(expr.seconds) == 1 else 1  # every zone used has whole-minute offsets
    u = start
    if step == 60:
        (s0,) = expr.seconds
        u = start + (s0 - start) % 60
    prev, prev_off = start - 1, _offset(zone, start - 1)
    while prev < end:
        off = _offset(zone, min(u, end))  # also look for an offset change between the last sample and end
        if off != prev_off:
            e = prev + 1
            while _offset(zone, e) == prev_off:
                e += 1
            new_off = _offset(zone, e)
            if pinned and new_off > prev_off and e >= start:
                gap = range(e + prev_off, e + new_off)  # skipped wall times, as naive seconds
                if any(expr.wall_ok(NAIVE_EPOCH + timedelta(seconds=w)) for w in gap):
                    return e, end
        if u > end:
            break
        wall = datetime.fromtimestamp(u, zone)
        if expr.wall_ok(wall.replace(tzinfo=None)) and not (pinned and wall.fold == 1):
            return u, end
        prev, prev_off = u, off
        u += step
    return None, end


def check(expr: Expr, key: str, after: float, window: int) -> None:
    try:
        got = fire(expr.text, key, after)
    except BadRequest as exc:
        # only an impossible day-of-month / month combination may be rejected
        assert "never occurs" in str(exc), str(exc)
        assert not expr.day_or
        assert min(expr.doms) > max({2: 29, 4: 30, 6: 30, 9: 30, 11: 30}.get(m, 31) for m in expr.months)
        return
    want, end = reference(expr, key, after, window)
    if want is None:
        assert got is None or got > end, (expr.text, key, after, got)
    else:
        assert got == want, (expr.text, key, after, got, want)


PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@settings(PROPERTY, max_examples=100)
@given(data=st.data(), key=st.sampled_from(ZONE_KEYS))
def test_upstream_every_second_matches_brute_force(data: st.DataObject, key: str) -> None:
    window = 2 * 3600
    expr = data.draw(upstream_expr(single_second=False))
    check(expr, key, data.draw(start_time(key, window)), window)


@PROPERTY
@given(data=st.data(), key=st.sampled_from(ZONE_KEYS))
def test_upstream_single_second_matches_brute_force(data: st.DataObject, key: str) -> None:
    window = 2 * 86400
    expr = data.draw(upstream_expr(single_second=True))
    check(expr, key, data.draw(start_time(key, window)), window)


@PROPERTY
@given(data=st.data(), key=st.sampled_from(ZONE_KEYS))
def test_classic_matches_brute_force(data: st.DataObject, key: str) -> None:
    window = 2 * 86400
    expr = data.draw(classic_expr())
    check(expr, key, data.draw(start_time(key, window)), window)


@PROPERTY
@given(data=st.data(), key=st.sampled_from(DST_KEYS))
def test_around_offset_changes_matches_brute_force(data: st.DataObject, key: str) -> None:
    """Hours pinned to include the skipped/repeated wall hour (or left as '*'), start shortly before it."""
    window = 86400
    e = data.draw(st.sampled_from(TRANSITIONS[key]))
    if data.draw(st.integers(0, 3)) == 0:
        hour_text, hours = "*", set(range(24))
    else:
        hours = {data.draw(st.sampled_from(sorted(_affected_hours(key, e))))}
        hours |= set(data.draw(st.lists(st.integers(0, 23), max_size=3)))
        hour_text = ",".join(map(str, sorted(hours)))
    minute_text, minutes = data.draw(field(0, 59, star=3))
    sec = data.draw(st.integers(0, 59))
    expr = Expr(
        f"{sec} {minute_text} {hour_text} * * ?",
        {sec},
        minutes,
        hours,
        set(range(1, 32)),
        set(range(1, 13)),
        set(range(7)),
        None,
        False,
    )
    after = e - data.draw(st.integers(1, 6 * 3600)) + data.draw(st.sampled_from([0.0, 0.5]))
    check(expr, key, after, window)


def test_fold_across_midnight_synthetic_zone() -> None:
    # Test/MidnightFold on 2026-10-25: 00:30+02:00 (22:30Z) falls back to 23:30+01:00 on the 24th
    after = _ts("2026-10-24T21:50:00+00:00")  # 23:50+02:00 on the 24th
    assert fire("0 15,45 * * * *", "Test/MidnightFold", after) == _ts("2026-10-24T22:15:00+00:00")  # 00:15+02
    after = _ts("2026-10-24T22:00:01+00:00")  # 00:00:01+02:00 on the 25th
    assert fire("0 45 * * * *", "Test/MidnightFold", after) == _ts("2026-10-24T22:45:00+00:00")  # 23:45+01
    assert fire("0 45 23 * * *", "Test/MidnightFold", after) == _ts(
        "2026-10-25T22:45:00+00:00"
    )  # pinned: once
    assert fire("0 0 0 * * *", "Test/MidnightFold", _ts("2026-10-24T21:00:00+00:00")) == _ts(
        "2026-10-24T22:00:00+00:00"
    )


@settings(max_examples=60, deadline=None)
@given(data=st.data(), key=st.sampled_from([k for k in ZONE_KEYS if not k.startswith("Test/")]))
def test_next_fires_is_a_chain_of_next_fire(data: st.DataObject, key: str) -> None:
    expr = data.draw(upstream_expr(single_second=data.draw(st.booleans())))
    after = data.draw(start_time(key, 86400))
    try:
        fires = next_fires(expr.text, key, after, 4)
    except BadRequest:
        return
    t, chained = after, []
    for _ in range(4):
        nxt = next_fire(expr.text, key, t)
        if nxt is None:
            break
        chained.append(nxt)
        t = nxt
    assert fires == chained
    assert all(a < b for a, b in zip(fires, fires[1:], strict=False))
    shown = preview(expr.text, key, after, 4)
    assert [datetime.fromisoformat(s).timestamp() for s in shown] == fires
