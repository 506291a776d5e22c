"""Decode every TRENDY time convention into calendar months, and build ILAMB's time axis.

Output convention (what ILAMB 2.7.3 reads without guessing): ``days since 1850-01-01`` in the
``noleap`` calendar, each step spanning whole calendar months or years, with contiguous bounds.
A source step is identified by the (year, month) it falls in; the day of month, leap days and the
source calendar only serve to find that month.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import cftime
import numpy as np

OUTPUT_UNITS = "days since 1850-01-01 00:00:00"
OUTPUT_CALENDAR = "noleap"
NOLEAP_MONTH_DAYS = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])
NOLEAP_MONTH_START = np.concatenate([[0], np.cumsum(NOLEAP_MONTH_DAYS)[:-1]])
CALENDARS = {
    "standard",
    "gregorian",
    "proleptic_gregorian",
    "julian",
    "noleap",
    "365_day",
    "all_leap",
    "366_day",
    "360_day",
}
MONTH_NAMES = {
    m: i + 1
    for i, m in enumerate(
        ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
    )
}
# Months are counted from this float tolerance so that 0.9999999 months is still month 1.
EPS = 1e-6


class TimeAxisError(ValueError):
    """The time axis cannot be decoded, or its steps are neither monthly nor annual."""


@dataclass
class TimeAxis:
    """Decoded axis: one (year, month) per step, the step (``monthly``/``annual``) and ILAMB's arrays."""

    years: np.ndarray
    months: np.ndarray
    step: str
    source_units: str
    source_calendar: str
    # The calendar the source's steps were measured in: the file's, or the configured default
    # where the file has none (``calendar_assumed``). Per-step amounts are divided by step
    # lengths under it, so February of a Gregorian leap year is 29 days, of a noleap file 28.
    calendar: str = "standard"
    calendar_assumed: bool = False
    warnings: list[str] = field(default_factory=list)

    @property
    def bounds(self) -> np.ndarray:
        """(n, 2) bounds in noleap days since 1850-01-01: whole months or whole years."""
        start = days_since_1850(self.years, self.months)
        if self.step == "monthly":
            next_year = self.years + (self.months == 12)
            next_month = self.months % 12 + 1
            end = days_since_1850(next_year, next_month)
        else:
            end = start + 365.0
        return np.stack([start, end], axis=1)

    @property
    def values(self) -> np.ndarray:
        """Midpoints of the bounds (ILAMB replaces times by these anyway)."""
        return self.bounds.mean(axis=1)

    @property
    def seconds(self) -> np.ndarray:
        """Length of each step in seconds under the source calendar, for amounts accumulated per step."""
        days = month_days(self.years, self.months, self.calendar)
        if self.step == "annual":
            days = sum(
                month_days(self.years, np.full_like(self.years, m), self.calendar) for m in range(1, 13)
            )
        return days.astype(np.float64) * 86400.0

    def span(self) -> tuple[str, str]:
        """First and last step as ``YYYY-MM`` (monthly) or ``YYYY`` (annual)."""
        if self.step == "monthly":
            fmt = [
                f"{y:04d}-{m:02d}"
                for y, m in ((self.years[0], self.months[0]), (self.years[-1], self.months[-1]))
            ]
        else:
            fmt = [f"{self.years[0]:04d}", f"{self.years[-1]:04d}"]
        return fmt[0], fmt[1]


def days_since_1850(years, months) -> np.ndarray:
    """Noleap days from 1850-01-01 to the first day of each (year, month)."""
    years = np.asarray(years, dtype=np.int64)
    months = np.asarray(months, dtype=np.int64)
    return ((years - 1850) * 365 + NOLEAP_MONTH_START[months - 1]).astype(np.float64)


def is_leap(years, calendar: str) -> np.ndarray:
    """Leap years under a CF calendar (``standard`` follows the Gregorian rule after 1582)."""
    years = np.asarray(years, dtype=np.int64)
    if calendar in ("noleap", "365_day", "360_day"):
        return np.zeros(years.shape, dtype=bool)
    if calendar in ("all_leap", "366_day"):
        return np.ones(years.shape, dtype=bool)
    julian = years % 4 == 0
    if calendar == "julian":
        return julian
    gregorian = julian & ((years % 100 != 0) | (years % 400 == 0))
    if calendar == "standard":
        return np.where(years < 1583, julian, gregorian)
    return gregorian


def month_days(years, months, calendar: str) -> np.ndarray:
    """Days in each (year, month) under a CF calendar."""
    months = np.asarray(months, dtype=np.int64)
    if calendar == "360_day":
        return np.full(months.shape, 30, dtype=np.int64)
    return NOLEAP_MONTH_DAYS[months - 1] + ((months == 2) & is_leap(years, calendar))


def time_units_attribute(variable) -> str | None:
    """The time unit string: ``units``, or DLEM's ``unit`` when ``units`` is missing."""
    for name in ("units", "unit", "Units"):
        if name in variable.ncattrs():
            return str(variable.getncattr(name))
    return None


def calendar_missing(calendar: str | None) -> bool:
    """True when the file gives no calendar (no attribute, an empty one, or ``None``)."""
    return calendar is None or str(calendar).strip().lower() in ("", "none", "null")


def normalise_calendar(calendar: str | None, default: str = "standard") -> str:
    """A cftime calendar name; a missing calendar means ``default`` (the CF default is ``standard``)."""
    if calendar_missing(calendar):
        return default
    text = str(calendar).strip().lower()
    if text not in CALENDARS:
        raise TimeAxisError(f"calendar {calendar!r} is not a CF calendar")
    return text


def parse_reference(text: str) -> tuple[int, int, int, float]:
    """(year, month, day, fraction of day) of a reference date in any TRENDY spelling.

    Examples: ``1700-1-16 12:00:00``, ``1700-01-01 00:00:00.000000``, ``0-Jan-1st``,
    ``AD 1700-Jan-1st``.
    """
    text = re.sub(r"\(.*?\)", " ", text).replace("AD", " ").strip()
    match = re.match(
        r"^(-?\d+)-(\d{1,2}|[A-Za-z]{3})[A-Za-z]*-(\d{1,2})(?:st|nd|rd|th)?(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}(?:\.\d*)?))?)?",
        text,
    )
    if not match:
        raise TimeAxisError(f"reference date {text!r} is not understood")
    year, month, day, hour, minute, second = match.groups()
    month = int(month) if month.isdigit() else MONTH_NAMES.get(month[:3].lower())
    if month is None or not 1 <= month <= 12:
        raise TimeAxisError(f"reference date {text!r} has no valid month")
    fraction = (int(hour or 0) * 3600 + int(minute or 0) * 60 + float(second or 0)) / 86400.0
    return int(year), month, int(day), fraction


def months_from_decimal_years(decimal_years: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(years, months) of decimal years: 1700.0417 is January 1700, 1700.125 is February."""
    decimal_years = np.asarray(decimal_years, dtype=np.float64)
    years = np.floor(decimal_years + EPS).astype(np.int64)
    months = np.floor((decimal_years - years) * 12 + EPS).astype(np.int64) + 1
    return years, np.clip(months, 1, 12)


def decode_months(values, units: str | None, calendar: str | None) -> tuple[np.ndarray, np.ndarray]:
    """(years, months) of each time value, for every convention found in TRENDY v13.

    - ``days|hours|minutes|seconds since REF`` in any CF calendar (cftime);
    - ``months since REF`` in any calendar (cftime accepts it only for 360_day);
    - ``years since REF`` and ``yr``, including VISIT's ``years since 0-Jan-1st (double)``;
    - ISAM's ``month as %Y%m.%f``, ``year as %Y.%f`` and ``day as %Y%m%d.%f``;
    - no units at all, with values that look like decimal years (ELM-FATES: 1701.0, 1701.0833).
    """
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        raise TimeAxisError("the time axis is empty")
    if not np.all(np.isfinite(values)):
        raise TimeAxisError("the time axis has missing or non-finite values")
    text = (units or "").strip()
    lowered = text.lower()
    if not text:
        if np.all((values > 1000) & (values < 3000)):
            return months_from_decimal_years(values)
        raise TimeAxisError("the time variable has no units, and its values are not decimal years")
    isam = re.match(r"^(day|month|year)\s+as\s+%y", lowered)
    if isam:
        whole = np.floor(values + EPS).astype(np.int64)
        if isam.group(1) == "year":
            return whole, np.ones_like(whole)
        if isam.group(1) == "month":
            return whole // 100, whole % 100
        return whole // 10000, (whole // 100) % 100
    if lowered in ("yr", "year", "years", "a"):
        return months_from_decimal_years(values)
    match = re.match(r"^(\w+)\s+since\s+(.+)$", text, re.IGNORECASE)
    if not match:
        raise TimeAxisError(f"time units {text!r} are not understood")
    unit, reference = match.group(1).lower(), match.group(2)
    year0, month0, day0, fraction0 = parse_reference(reference)
    if unit in ("month", "months", "mon"):
        index = np.floor(values + EPS).astype(np.int64) + (month0 - 1)
        return year0 + index // 12, index % 12 + 1
    if unit in ("year", "years", "yr", "yrs"):
        offset = (NOLEAP_MONTH_START[month0 - 1] + day0 - 1 + fraction0) / 365.0
        return months_from_decimal_years(year0 + offset + values)
    if unit not in (
        "day",
        "days",
        "d",
        "hour",
        "hours",
        "h",
        "hr",
        "minute",
        "minutes",
        "min",
        "second",
        "seconds",
        "s",
        "sec",
    ):
        raise TimeAxisError(f"time units {text!r} are not understood")
    calendar = normalise_calendar(calendar)
    clean_units = f"{unit} since {year0:04d}-{month0:02d}-{day0:02d}"
    if fraction0:
        seconds = round(fraction0 * 86400)
        clean_units += f" {seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
    try:
        dates = cftime.num2date(values, clean_units, calendar=calendar, only_use_cftime_datetimes=True)
    except (ValueError, TypeError) as err:
        raise TimeAxisError(f"time units {text!r} with calendar {calendar!r}: {err}") from None
    dates = np.atleast_1d(dates)
    return np.array([d.year for d in dates], dtype=np.int64), np.array(
        [d.month for d in dates], dtype=np.int64
    )


def classify_steps(years: np.ndarray, months: np.ndarray, units: str | None) -> str:
    """``monthly`` or ``annual``, or raise :class:`TimeAxisError` for gappy or irregular steps."""
    if np.any((months < 1) | (months > 12)):
        raise TimeAxisError(f"time values decode to invalid months under units {units!r}")
    index = years * 12 + (months - 1)
    steps = np.diff(index)
    if index.size == 1:
        return "annual" if (units or "").lower().startswith(("year", "yr")) else "monthly"
    if np.all(steps == 1):
        return "monthly"
    if np.all(steps == 12):
        return "annual"
    kinds = sorted({int(s) for s in steps})[:5]
    raise TimeAxisError(
        "time steps are neither consecutive months nor consecutive years "
        f"(steps in months seen: {kinds}); daily or gappy files are not supported"
    )


def calendar_decides_months(units: str | None) -> bool:
    """True for ``days|hours|minutes|seconds since``: only then does the calendar move steps between months."""
    return bool(
        re.match(r"^\s*(days?|d|hours?|h|hr|minutes?|min|seconds?|s|sec)\s+since\s", units or "", re.I)
    )


def decode_time(
    values, units: str | None, calendar: str | None, bounds=None, missing_calendar: str = "standard"
) -> TimeAxis:
    """Decode a time axis and classify it as monthly or annual, or raise :class:`TimeAxisError`.

    When the source has time bounds, the midpoint of each bound interval locates the step, so
    time stamps written at the end of their interval do not shift the data by one month.

    A file without a calendar is read under ``missing_calendar`` (a per-model config decision)
    and the axis carries a warning saying so. Where the steps are not consecutive under that
    calendar but are under another one, the error names the calendar that fits; where both fit
    but place the data in different months, the warning gives the other reading's span.
    """
    values = np.asarray(values, dtype=np.float64)
    if bounds is not None:
        bounds = np.asarray(bounds, dtype=np.float64)
        if bounds.shape == (values.size, 2) and np.all(np.isfinite(bounds)):
            values = bounds.mean(axis=1)
    assumed = calendar_missing(calendar)
    effective = normalise_calendar(calendar, missing_calendar)
    warnings = []
    years, months = decode_months(values, units, effective)
    if assumed and calendar_decides_months(units):
        others = {}
        for other in ("standard", "noleap", "360_day"):
            if other == effective:
                continue
            try:
                o_years, o_months = decode_months(values, units, other)
                others[other] = (o_years, o_months, classify_steps(o_years, o_months, units))
            except TimeAxisError:
                continue
        try:
            step = classify_steps(years, months, units)
        except TimeAxisError as err:
            fits = sorted(others)
            if fits:
                raise TimeAxisError(
                    f"the time variable has no calendar attribute; read as {effective!r} "
                    f"(trendy.missing_calendar) its steps are not consecutive ({err}), but under "
                    f"{' or '.join(repr(f) for f in fits)} they are: set trendy.missing_calendar_by_model "
                    "for this model to the calendar the file was written in"
                ) from None
            raise
        first = f"{years[0]:04d}-{months[0]:02d}"
        differ = [
            f"under {name!r} it would start {o_years[0]:04d}-{o_months[0]:02d}"
            for name, (o_years, o_months, o_step) in others.items()
            if o_step == step and (o_years[0], o_months[0]) != (years[0], months[0])
        ]
        warnings.append(
            f"no calendar attribute: read as {effective!r} (trendy.missing_calendar), first step {first}"
            + (f"; {', '.join(differ)}" if differ else "")
        )
    else:
        step = classify_steps(years, months, units)
    if step == "annual":
        months = np.ones_like(months)
    return TimeAxis(
        years,
        months,
        step,
        units or "",
        str(calendar) if calendar is not None else "",
        calendar=effective,
        calendar_assumed=assumed,
        warnings=warnings,
    )


def cf_month_span(axis: TimeAxis) -> str:
    """Human-readable span, e.g. ``1700-01..2023-12 (monthly, 3888 steps)``."""
    first, last = axis.span()
    return f"{first}..{last} ({axis.step}, {axis.years.size} steps)"


__all__ = [
    "OUTPUT_CALENDAR",
    "OUTPUT_UNITS",
    "TimeAxis",
    "TimeAxisError",
    "decode_months",
    "decode_time",
    "days_since_1850",
]
