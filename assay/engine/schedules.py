"""Schedules: cron fire times in a time zone, overlap policies, fired-run ids. Pure: time is passed in.

Cron dialect: see :mod:`assay.engine.cron` (6/7-field upstream dialect, classic 5-field crontab, shorthands).

Time zones: ``UTC`` in any letter case (also ``None`` / ``""``), or an IANA name known to the tz database,
case-sensitively (aliases such as ``US/Eastern`` and ``Etc/GMT+5`` included).

Fire times are computed on the zone's wall clock and returned as UTC epoch seconds (whole seconds). Around
DST (and any other UTC-offset change) the rule depends on whether the hour field pins hours (the vixie-cron
rule):

* **Hour field allows all 24 hours** (``*``, ``0-23``, ``@hourly`` ...: sub-daily "every ..." schedules):
  the schedule fires at every real instant whose local wall clock matches. In a spring-forward gap the
  skipped wall times do not exist, so nothing fires for them (``0 30 * * * *`` in Europe/Berlin on
  2026-03-29 fires 01:30+01:00, then 03:30+02:00). In a fall-back overlap the repeated wall times happen
  twice and fire twice (02:30+02:00 and 02:30+01:00 on 2026-10-25).
* **Hour field pins hours** (``0 30 2 * * *``, ``0 0 */6 * * *``, ``@daily``): each matching wall time fires
  once. A wall time inside a spring-forward gap fires at the first valid instant after the gap (a daily
  02:30 in Europe/Berlin fires at 03:00+02:00 = 01:00Z on 2026-03-29; several gap times collapse into that
  one fire). A repeated wall time fires at its first occurrence only (02:30+02:00 = 00:30Z on 2026-10-25).

Searches are bounded (the calendar stops at the end of year 2199); ``next_fire`` returns ``None`` when
there is no later fire time. The zone's offset changes are found by sampling it hourly (and bisecting),
so two offset changes less than an hour apart would be seen as one; no real zone does that.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, available_timezones

from assay.engine.cron import DAY, YEAR_MAX, CronSpec, parse_cron
from assay.errors import BadRequest
from assay.protocol import OverlapPolicy

__all__ = [
    "CronSpec",
    "fired_workflow_id",
    "next_fire",
    "next_fires",
    "parse_cron",
    "preview",
    "validate_overlap_policy",
    "validate_timezone",
]

_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_MARGIN = 16 * 3600  # more than any UTC offset (+14:00 / -12:00) plus slack
_STEP = 3600  # offset sampling step inside one day's window
_NOT_ZONES = frozenset({"localtime", "posixrules"})  # host-dependent files, not zone names
_LAST_INSTANT = (date(YEAR_MAX + 1, 1, 2).toordinal() - _EPOCH_ORDINAL) * DAY


def validate_overlap_policy(policy: str) -> OverlapPolicy:
    """``policy`` as an OverlapPolicy (exact spelling); BadRequest otherwise."""
    try:
        return OverlapPolicy(policy)
    except ValueError:
        expected = ", ".join(p.value for p in OverlapPolicy)
        raise BadRequest(f"invalid overlap_policy {policy!r}: expected one of {expected}") from None


@lru_cache(maxsize=1)
def _zone_names() -> frozenset[str]:
    return frozenset(available_timezones()) - _NOT_ZONES


def validate_timezone(tz: str | None) -> str:
    """Canonical zone name: ``"UTC"`` for utc in any case, None or ""; the IANA name as given otherwise."""
    if tz is None or tz == "":
        return "UTC"
    if not isinstance(tz, str):
        raise BadRequest(f"invalid timezone: {tz!r}")
    if tz.upper() == "UTC":
        return "UTC"
    if tz not in _zone_names():
        raise BadRequest(f"invalid timezone: {tz}")
    return tz


def _zone(tz: str | None) -> ZoneInfo:
    return ZoneInfo(validate_timezone(tz))


def _offset(zone: ZoneInfo, t: int) -> int:
    off = datetime.fromtimestamp(t, zone).utcoffset()
    return int(off.total_seconds()) if off is not None else 0


@dataclass(frozen=True)
class _Segment:
    start: int  # first instant (UTC epoch seconds)
    end: int  # first instant after the segment
    offset: int  # UTC offset in seconds during the segment


@lru_cache(maxsize=4096)
def _segments(zone: ZoneInfo, lo: int, hi: int) -> tuple[_Segment, ...]:
    """Split [lo, hi) into runs of constant UTC offset."""
    out: list[_Segment] = []
    start, off = lo, _offset(zone, lo)
    t = lo
    while t < hi:
        nxt = min(t + _STEP, hi)
        noff = _offset(zone, nxt)
        if noff != off:
            a, b = t, nxt  # offset(a) == off, offset(b) != off: find the first changed second
            while b - a > 1:
                mid = (a + b) // 2
                if _offset(zone, mid) == off:
                    a = mid
                else:
                    b = mid
            out.append(_Segment(start, b, off))
            start, off = b, _offset(zone, b)
        t = nxt
    out.append(_Segment(start, hi, off))
    return tuple(out)


def _fire_on_day(spec: CronSpec, zone: ZoneInfo, day: date, t: int) -> int | None:
    """Earliest fire instant >= t among the wall times of local date ``day`` (the date already matches)."""
    d0 = (day.toordinal() - _EPOCH_ORDINAL) * DAY  # the day's midnight, as naive wall seconds
    d1 = d0 + DAY
    segs = _segments(zone, d0 - _MARGIN, d1 + _MARGIN)
    pinned = spec.pins_hour
    for i, seg in enumerate(segs):
        o = seg.offset
        lo = max(seg.start + o, d0, t + o)
        if pinned and i > 0 and segs[i - 1].offset > o:
            lo = max(lo, seg.start + segs[i - 1].offset)  # repeated wall times already fired
        hi = min(seg.end + o, d1)
        if lo < hi:
            sod = spec.next_time_of_day(lo - d0)
            if sod is not None and d0 + sod < hi:
                return d0 + sod - o
        if pinned and i + 1 < len(segs) and segs[i + 1].offset > o and seg.end >= t:
            glo, ghi = max(seg.end + o, d0), min(seg.end + segs[i + 1].offset, d1)  # the gap's wall times
            if glo < ghi:
                sod = spec.next_time_of_day(glo - d0)
                if sod is not None and d0 + sod < ghi:
                    return seg.end
    return None


def _spec(expr_or_spec: str | CronSpec) -> CronSpec:
    return expr_or_spec if isinstance(expr_or_spec, CronSpec) else parse_cron(expr_or_spec)


def _next(spec: CronSpec, zone: ZoneInfo, t: int) -> int | None:
    """First fire instant >= t."""
    if t >= _LAST_INSTANT:
        return None
    # Start a day early: a fall-back overlap across midnight replays the previous date's wall times.
    start = datetime.fromtimestamp(t, zone).date() - timedelta(days=1)
    best: int | None = None
    found_day: date | None = None
    day = spec.next_date(start)
    while day is not None:
        if found_day is not None and day > found_day + timedelta(days=1):
            break
        fire = _fire_on_day(spec, zone, day, t)
        if fire is not None and (best is None or fire < best):
            best = fire
            found_day = found_day or day
        day = spec.next_date(day + timedelta(days=1))
    return best


def next_fire(expr_or_spec: str | CronSpec, tz: str | None, after: float) -> float | None:
    """First fire time strictly after ``after`` (UTC epoch seconds), or None if there is none."""
    spec = _spec(expr_or_spec)
    fire = _next(spec, _zone(tz), math.floor(after) + 1)
    return None if fire is None else float(fire)


def next_fires(expr_or_spec: str | CronSpec, tz: str | None, after: float, n: int = 5) -> list[float]:
    """The next ``n`` fire times strictly after ``after`` (fewer if the schedule ends)."""
    spec, zone = _spec(expr_or_spec), _zone(tz)
    out: list[float] = []
    t = math.floor(after) + 1
    while len(out) < n:
        fire = _next(spec, zone, t)
        if fire is None:
            break
        out.append(float(fire))
        t = fire + 1
    return out


def preview(expr: str | CronSpec, tz: str | None, after: float, n: int = 5) -> list[str]:
    """The next ``n`` fire times as ISO 8601 strings in the schedule's zone, e.g. 2026-03-29T03:00:00+02:00."""
    zone = _zone(tz)
    return [datetime.fromtimestamp(f, zone).isoformat() for f in next_fires(expr, tz, after, n)]


def fired_workflow_id(schedule_name: str, fire_time: float) -> str:
    """``<schedule>-<UTC timestamp>``, e.g. ``nightly-20260329T010000Z`` (unique per second)."""
    stamp = datetime.fromtimestamp(math.floor(fire_time), UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{schedule_name}-{stamp}"
