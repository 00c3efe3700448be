"""Cron expression parsing and zone-free calendar matching (pure; no clock, no I/O).

Two dialects are accepted (see ``schedules`` for time zones and DST):

* upstream 6/7 fields ``sec min hour day-of-month month day-of-week [year]``; day-of-week 1-7 = Sun-Sat;
  day-of-month AND day-of-week must both match;
* classic 5-field crontab ``min hour day-of-month month day-of-week``; seconds are 0, day-of-week 0-7
  (0 and 7 = Sunday), and when both day fields are restricted (neither starts with ``*`` or ``?``) a day
  matches if EITHER matches (the crontab OR rule).

Each field is a comma list of ``*``, ``?`` (day fields only; same as ``*``), ``v``, ``a-b``, ``*/n``,
``a/n`` (a, a+n, ... up to the field maximum) and ``a-b/n``. Month and day-of-week accept English names
(``Jan``/``January``, ``Sun``/``Sunday``), case-insensitively. Ranges must not wrap (``Fri-Mon`` is an
error; write ``Fri-Sat,Sun-Mon``). The year field accepts 1970-2199; searches stop at the end of 2199.
Shorthands: ``@yearly`` ``@annually`` ``@monthly`` ``@weekly`` ``@daily`` ``@midnight`` ``@hourly``.

A day-of-month that can never occur in any of the allowed months (``0 0 0 30 2 *``) is rejected by the
parser; specs that are possible in general but not in the allowed years (``... 29 2 * 2027``) or only in
the past simply have no next fire time (``None``).
"""

from __future__ import annotations

import calendar
from bisect import bisect_left
from dataclasses import dataclass
from datetime import date
from functools import lru_cache

from assay.errors import BadRequest

YEAR_MIN = 1970
YEAR_MAX = 2199
DAY = 86400

SHORTHANDS: dict[str, str] = {
    "@yearly": "0 0 0 1 1 *",
    "@annually": "0 0 0 1 1 *",
    "@monthly": "0 0 0 1 * *",
    "@weekly": "0 0 0 * * 1",
    "@daily": "0 0 0 * * *",
    "@midnight": "0 0 0 * * *",
    "@hourly": "0 0 * * * *",
}

_MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
_MONTH_FULL = [calendar.month_name[i].lower() for i in range(1, 13)]
_DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
_DAY_FULL = ["sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"]
MONTH_NAMES: dict[str, int] = {n: i + 1 for i, n in enumerate(_MONTHS)} | {
    n: i + 1 for i, n in enumerate(_MONTH_FULL)
}
_DOW_INDEX: dict[str, int] = {n: i for i, n in enumerate(_DAYS)} | {n: i for i, n in enumerate(_DAY_FULL)}


@dataclass(frozen=True)
class _Field:
    name: str
    lo: int
    hi: int
    names: dict[str, int] | None = None
    question: bool = False  # '?' allowed


def _fields(classic: bool) -> list[_Field]:
    dow_names = {n: i if classic else i + 1 for n, i in _DOW_INDEX.items()}
    fields = [
        _Field("second", 0, 59),
        _Field("minute", 0, 59),
        _Field("hour", 0, 23),
        _Field("day-of-month", 1, 31, question=True),
        _Field("month", 1, 12, MONTH_NAMES),
        _Field("day-of-week", 0 if classic else 1, 7, dow_names, question=True),
        _Field("year", YEAR_MIN, YEAR_MAX),
    ]
    return fields[1:6] if classic else fields


@dataclass(frozen=True)
class CronSpec:
    """A parsed expression. Value tuples are sorted; day-of-week is normalised to 0-6 with 0 = Sunday."""

    expr: str
    seconds: tuple[int, ...]
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: tuple[int, ...]  # day-of-month 1-31
    months: tuple[int, ...]
    weekdays: tuple[int, ...]  # 0 = Sunday
    years: tuple[int, ...] | None  # None = any year
    day_or: bool = False  # classic crontab OR rule in force (5-field, both day fields restricted)
    classic: bool = False

    @property
    def pins_hour(self) -> bool:
        """True when the hour field does not allow all 24 hours (the DST "fixed time" rule applies)."""
        return len(self.hours) < 24

    def date_matches(self, year: int, month: int, day: int) -> bool:
        if month not in self.months or (self.years is not None and year not in self.years):
            return False
        dom_ok = day in self.days
        dow_ok = (date(year, month, day).weekday() + 1) % 7 in self.weekdays
        return (dom_ok or dow_ok) if self.day_or else (dom_ok and dow_ok)

    def time_matches(self, second_of_day: int) -> bool:
        h, rem = divmod(second_of_day, 3600)
        m, s = divmod(rem, 60)
        return h in self.hours and m in self.minutes and s in self.seconds

    def next_time_of_day(self, lo: int) -> int | None:
        """Smallest matching second-of-day >= lo (0 <= lo), or None if none is left in the day."""
        if lo >= DAY:
            return None
        h, rem = divmod(lo, 3600)
        m, s = divmod(rem, 60)
        hours, minutes, seconds = self.hours, self.minutes, self.seconds
        hi = bisect_left(hours, h)
        if hi == len(hours):
            return None
        if hours[hi] == h:
            mi = bisect_left(minutes, m)
            if mi < len(minutes) and minutes[mi] == m:
                si = bisect_left(seconds, s)
                if si < len(seconds):
                    return h * 3600 + m * 60 + seconds[si]
                mi += 1
            if mi < len(minutes):
                return h * 3600 + minutes[mi] * 60 + seconds[0]
            hi += 1
            if hi == len(hours):
                return None
        return hours[hi] * 3600 + minutes[0] * 60 + seconds[0]

    def next_date(self, start: date) -> date | None:
        """First date >= start that matches the month/day/year fields, or None (searches to YEAR_MAX)."""
        y, m, d = start.year, start.month, start.day
        while y <= YEAR_MAX:
            if self.years is not None and y not in self.years:
                i = bisect_left(self.years, y)
                if i == len(self.years):
                    return None
                y, m, d = self.years[i], 1, 1
                continue
            for month in self.months:
                if month < m:
                    continue
                first = d if month == m else 1
                for day in range(first, calendar.monthrange(y, month)[1] + 1):
                    if self.date_matches(y, month, day):
                        return date(y, month, day)
            y, m, d = y + 1, 1, 1
        return None


def _err(expr: str, detail: str) -> BadRequest:
    return BadRequest(f"invalid cron expression '{expr}': {detail}")


def _value(expr: str, f: _Field, text: str, token: str) -> int:
    where = f"{f.name} field '{text}'"
    if token.isdigit() and token.isascii():
        v = int(token)
    elif f.names is not None and token.lower() in f.names:
        return f.names[token.lower()]
    elif token == "":
        raise _err(expr, f"{where}: missing value")
    else:
        raise _err(expr, f"{where}: invalid value '{token}'")
    if not f.lo <= v <= f.hi:
        what = "value" if token == text else f"value '{token}'"
        raise _err(expr, f"{where}: {what} out of range {f.lo}-{f.hi}")
    return v


def _parse_field(expr: str, f: _Field, text: str) -> set[int]:
    where = f"{f.name} field '{text}'"
    out: set[int] = set()
    for part in text.split(","):
        if part == "":
            raise _err(expr, f"{where}: empty list element")
        base, slash, step_text = part.partition("/")
        step = 1
        if slash:
            if not (step_text.isdigit() and step_text.isascii()) or int(step_text) < 1:
                raise _err(expr, f"{where}: invalid step '{step_text}'")
            step = int(step_text)
        if base in ("*", "?"):
            if base == "?" and not f.question:
                raise _err(expr, f"{where}: '?' is only allowed in day-of-month and day-of-week")
            lo, hi = f.lo, f.hi
        elif "-" in base:
            a, _, b = base.partition("-")
            lo, hi = _value(expr, f, text, a), _value(expr, f, text, b)
            if lo > hi:
                raise _err(expr, f"{where}: range '{base}' runs backwards")
        else:
            lo = _value(expr, f, text, base)
            hi = f.hi if slash else lo
        out.update(range(lo, hi + 1, step))
    return out


def _check_possible(expr: str, days: set[int], months: set[int], dom_text: str, month_text: str) -> None:
    longest = max(calendar.monthrange(2000, m)[1] for m in months)  # 2000 is a leap year
    if min(days) > longest:
        raise _err(expr, f"day-of-month field '{dom_text}' never occurs in month field '{month_text}'")


def parse_cron(expr: str) -> CronSpec:
    """Parse ``expr`` (see the module docstring). Raises BadRequest naming the bad field and value."""
    if not isinstance(expr, str):
        raise BadRequest(f"invalid cron expression {expr!r}: expected a string")
    return _parse(expr)


@lru_cache(maxsize=1024)
def _parse(expr: str) -> CronSpec:
    text = expr.strip()
    if text.startswith("@"):
        if text.lower() not in SHORTHANDS:
            raise _err(expr, f"unknown shorthand '{text}' (expected one of {', '.join(SHORTHANDS)})")
        text = SHORTHANDS[text.lower()]
    parts = text.split()
    if len(parts) not in (5, 6, 7):
        raise _err(expr, f"expected 5, 6 or 7 fields, got {len(parts)}")
    classic = len(parts) == 5
    fields = _fields(classic)[: len(parts)]
    values = {f.name: _parse_field(expr, f, p) for f, p in zip(fields, parts, strict=True)}
    texts = {f.name: p for f, p in zip(fields, parts, strict=True)}
    if classic:
        values["second"] = {0}
        values["day-of-week"] = {v % 7 for v in values["day-of-week"]}
    else:
        values["day-of-week"] = {v - 1 for v in values["day-of-week"]}
    unrestricted = ("*", "?")
    day_or = (
        classic
        and not texts["day-of-month"].startswith(unrestricted)
        and not texts["day-of-week"].startswith(unrestricted)
    )
    if not day_or:
        _check_possible(expr, values["day-of-month"], values["month"], texts["day-of-month"], texts["month"])
    years = values.get("year")
    return CronSpec(
        expr=expr,
        seconds=tuple(sorted(values["second"])),
        minutes=tuple(sorted(values["minute"])),
        hours=tuple(sorted(values["hour"])),
        days=tuple(sorted(values["day-of-month"])),
        months=tuple(sorted(values["month"])),
        weekdays=tuple(sorted(values["day-of-week"])),
        years=tuple(sorted(years)) if years is not None and len(years) < YEAR_MAX - YEAR_MIN + 1 else None,
        day_or=day_or,
        classic=classic,
    )
