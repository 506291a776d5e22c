"""Every TRENDY time convention decodes to the right calendar months (expected values by hand)."""

import numpy as np
import pytest
from trendy.timeaxis import TimeAxisError, decode_time, parse_reference

# Noleap days from 1850-01-01 to 1700-01-01 and 1701-01-01.
DAY_1700 = -150 * 365
DAY_1701 = -149 * 365


@pytest.mark.parametrize(
    ("values", "units", "calendar", "step", "first", "last"),
    [
        (np.arange(24) + 0.0, "months since 1700-1-16 12:00:00", "365_day", "monthly", "1700-01", "1701-12"),
        (np.arange(24) + 0.0, "months since 1700-1-1", "365_day", "monthly", "1700-01", "1701-12"),
        (np.arange(3) + 0.0, "years since 1700-6-15 12:00:00", "365_day", "annual", "1700", "1702"),
        (np.array([15.0, 46.0, 74.0]), "days since 1699-12-31", "365_day", "monthly", "1700-01", "1700-03"),
        (np.arange(1700, 1703), "yr", None, "annual", "1700", "1702"),
        (
            1700 + (np.arange(24) + 0.5) / 12,
            "years since 0-Jan-1st (double)",
            None,
            "monthly",
            "1700-01",
            "1701-12",
        ),
        (
            np.array([170001.5, 170002.5, 170003.5]),
            "month as %Y%m.%f",
            "noleap",
            "monthly",
            "1700-01",
            "1700-03",
        ),
        (np.array([1700.5, 1701.5]), "year as %Y.%f", "noleap", "annual", "1700", "1701"),
        (np.array([17000115.0, 17000215.0]), "day as %Y%m%d.%f", "noleap", "monthly", "1700-01", "1700-02"),
        (1701 + np.arange(24) / 12, None, None, "monthly", "1701-01", "1702-12"),
        (
            (np.arange(24) * 30 + 15) * 24.0,
            "hours since 1700-01-01 00:00:00",
            "360_day",
            "monthly",
            "1700-01",
            "1701-12",
        ),
        (
            (np.arange(12) * 30 + 15) * 24.0,
            "hours since 1900-01-01 00:00:00",
            "360_day",
            "monthly",
            "1900-01",
            "1900-12",
        ),
        (
            np.arange(24) * 30.4 * 24,
            "hours since 1701-1-16 12:00:00",
            "proleptic_gregorian",
            "monthly",
            "1701-01",
            "1702-12",
        ),
        (np.array([15.0, 45.0]), "days since 1700-01-01", None, "monthly", "1700-01", "1700-02"),
        (np.array([15.0, 45.0]), "days since 1700-01-01", "None", "monthly", "1700-01", "1700-02"),
    ],
)
def test_decode(values, units, calendar, step, first, last):
    axis = decode_time(values, units, calendar)
    assert axis.step == step
    assert axis.span() == (first, last)


def test_bounds_are_contiguous_whole_months_in_noleap_days():
    axis = decode_time(np.arange(14) + 0.0, "months since 1700-1-1", "365_day")
    bounds = axis.bounds
    assert bounds[0].tolist() == [DAY_1700, DAY_1700 + 31]
    assert bounds[1].tolist() == [DAY_1700 + 31, DAY_1700 + 59]
    assert bounds[12].tolist() == [DAY_1701, DAY_1701 + 31]
    assert np.array_equal(bounds[1:, 0], bounds[:-1, 1])
    assert np.all((axis.values > bounds[:, 0]) & (axis.values < bounds[:, 1]))


def test_annual_bounds_span_whole_years():
    axis = decode_time(np.arange(3) + 0.0, "years since 1700-6-15 12:00:00", "365_day")
    assert axis.bounds.tolist() == [[DAY_1700 + 365 * k, DAY_1700 + 365 * (k + 1)] for k in range(3)]


def test_end_stamped_times_use_their_bounds():
    """ELM stamps each month at its end (1 Feb for January): the bounds' midpoint finds January."""
    starts = np.array([0.0, 31.0, 59.0])
    ends = np.array([31.0, 59.0, 90.0])
    axis = decode_time(ends, "days since 1700-01-01", "noleap", bounds=np.stack([starts, ends], 1))
    assert axis.span() == ("1700-01", "1700-03")


@pytest.mark.parametrize(
    ("values", "units", "message"),
    [
        (np.arange(40) + 0.0, "days since 1700-01-01", "neither consecutive months"),
        (np.array([0.0, 1.0, 3.0]), "months since 1700-01-01", "neither consecutive months"),
        (np.arange(3) + 0.0, "fortnights after lunch", "not understood"),
        (np.arange(3) + 0.0, None, "no units"),
    ],
)
def test_bad_time_axes_fail_clearly(values, units, message):
    with pytest.raises(TimeAxisError, match=message):
        decode_time(values, units, "noleap")


def test_parse_reference_spellings():
    assert parse_reference("0-Jan-1st (double)") == (0, 1, 1, 0.0)
    assert parse_reference("AD 1700-Jan-1st") == (1700, 1, 1, 0.0)
    assert parse_reference("1701-1-16 12:00:00") == (1701, 1, 16, 0.5)
