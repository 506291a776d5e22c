"""Nothing shifts or scales the data without a word: month lengths, missing calendars, empty data, units.

Each source file here is written by hand (netCDF4, no converter code), with values whose true
conversion is known: a per-month amount is the flux times that month's real length.
"""

import netCDF4
import numpy as np
import pytest
from trendy.convert import VariableSpec, convert_to_stage

GPP = VariableSpec("gpp", "gpp", "kg m-2 s-1")
CVEG = VariableSpec("cVeg", "cVeg", "kg m-2")
FLUX = 3e-8  # kg m-2 s-1, the same in every month, so the output must be flat
NOLEAP_DAYS = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
NOLEAP_START = np.concatenate([[0], np.cumsum(NOLEAP_DAYS)[:-1]])


def month_lengths(years, months, calendar):
    """Days per month, written out by hand for the two calendars used here."""
    days = np.array([NOLEAP_DAYS[m - 1] for m in months])
    if calendar == "standard":
        leap = np.array([(y % 4 == 0 and y % 100 != 0) or y % 400 == 0 for y in years])
        days = days + ((np.asarray(months) == 2) & leap)
    return days


def write_monthly(
    path, years, months, time_values, time_units, calendar, values, units="kg m-2 s-1", name="gpp"
):
    """A (time, lat, lon) file on a 2x3 grid; ``calendar=None`` writes no calendar attribute."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("time", len(years))
        ds.createDimension("lat", 2)
        ds.createDimension("lon", 3)
        t = ds.createVariable("time", "f8", ("time",))
        t.units = time_units
        if calendar is not None:
            t.calendar = calendar
        t[:] = time_values
        ds.createVariable("lat", "f8", ("lat",))[:] = [-45.0, 45.0]
        ds.createVariable("lon", "f8", ("lon",))[:] = [-120.0, 0.0, 120.0]
        var = ds.createVariable(name, "f4", ("time", "lat", "lon"), fill_value=-99999.0)
        if units is not None:
            var.units = units
        var[:] = np.broadcast_to(np.asarray(values, dtype="f8")[:, None, None], (len(years), 2, 3))
    return path


def convert(tmp_path, source, spec=GPP, **options):
    status = convert_to_stage(source, tmp_path / "stage", spec, "M", "S3", ilamb_check=False, **options)
    return status, tmp_path / "stage" / f"{spec.ilamb_name}.nc"


@pytest.mark.parametrize("calendar", ["standard", "noleap"])
def test_per_month_amounts_use_each_months_real_length(tmp_path, calendar):
    """kg m-2 month-1 in 1704 (a leap year): February is 29 days under standard, 28 under noleap."""
    years, months = np.full(12, 1704), np.arange(1, 13)
    days = month_lengths(years, months, calendar)
    starts = np.concatenate([[0], np.cumsum(days)[:-1]])
    source = write_monthly(
        tmp_path / "src.nc",
        years,
        months,
        starts + 14.0,
        "days since 1704-01-01",
        calendar,
        FLUX * days * 86400.0,
        units="kg m-2 month-1",
    )
    status, output = convert(tmp_path, source)
    assert status["status"] == "ok", status["error"]
    with netCDF4.Dataset(output) as ds:
        out = ds["gpp"][:, 0, 0]
    np.testing.assert_allclose(out, FLUX, rtol=1e-6)  # udunits' 30.44-day month: Feb 5-8% low
    assert "month's length" in status["unit_conversion"]


def test_per_month_unit_on_annual_steps_is_refused(tmp_path):
    source = write_monthly(
        tmp_path / "src.nc",
        [1700, 1701],
        [1, 1],
        [0.5, 1.5],
        "years since 1700-01-01",
        "noleap",
        [1.0, 1.0],
        units="kg m-2 month-1",
    )
    status, _ = convert(tmp_path, source)
    assert status["status"] == "failed"
    assert "per month" in status["error"] and "annual" in status["error"]


def noleap_mid_months(first_year, n_years):
    """(years, months, days since 1850-01-01 at mid-month) of a 365-day calendar."""
    index = np.arange(n_years * 12)
    years, months = first_year + index // 12, index % 12 + 1
    days = (years - 1850) * 365 + NOLEAP_START[months - 1] + 14.0
    return years, months, days


def test_missing_calendar_is_read_as_configured_with_a_warning(tmp_path):
    """A 365-day file without a calendar: read as standard it starts at 1999-12, and says so."""
    years, months, days = noleap_mid_months(2000, 2)
    source = write_monthly(
        tmp_path / "src.nc", years, months, days, "days since 1850-01-01", None, np.full(24, FLUX)
    )
    status, _ = convert(tmp_path, source)
    assert status["status"] == "ok"
    assert status["time_start"] == "1999-12"
    assert "no calendar attribute" in status["warnings"]
    assert "'noleap' it would start 2000-01" in status["warnings"]

    status, _ = convert(tmp_path, source, missing_calendar="noleap")
    assert status["status"] == "ok" and status["time_start"] == "2000-01"
    assert "read as 'noleap'" in status["warnings"]


def test_axis_that_only_fits_another_calendar_names_it(tmp_path):
    """A long 365-day file without a calendar is not consecutive under standard: the error says why."""
    years, months, days = noleap_mid_months(1700, 200)
    source = write_monthly(
        tmp_path / "src.nc", years, months, days, "days since 1850-01-01", None, np.full(days.size, FLUX)
    )
    status, _ = convert(tmp_path, source)
    assert status["status"] == "failed"
    assert "no calendar attribute" in status["error"] and "'noleap'" in status["error"]
    status, _ = convert(tmp_path, source, missing_calendar="365_day")
    assert status["status"] == "ok" and (status["time_start"], status["time_end"]) == ("1700-01", "1899-12")


@pytest.mark.parametrize("fill", [np.nan, -99999.0])
def test_all_missing_variable_is_a_named_failure(tmp_path, fill):
    years, months, days = noleap_mid_months(2000, 1)
    source = write_monthly(
        tmp_path / "src.nc", years, months, days, "days since 1850-01-01", "noleap", np.full(12, fill)
    )
    status, output = convert(tmp_path, source)
    assert status["status"] == "failed"
    assert "every value of 'gpp' is missing" in status["error"]
    assert not output.exists()


def test_missing_units_attribute_says_so(tmp_path):
    years, months, days = noleap_mid_months(2000, 1)
    source = write_monthly(
        tmp_path / "src.nc",
        years,
        months,
        days,
        "days since 1850-01-01",
        "noleap",
        np.full(12, FLUX),
        units=None,
    )
    status, _ = convert(tmp_path, source)
    assert status["status"] == "failed"
    assert "'gpp' has no units attribute" in status["error"]


def test_fluxes_are_time_means_and_pools_are_not(tmp_path):
    years, months, days = noleap_mid_months(2000, 1)
    flux = write_monthly(
        tmp_path / "a" / "src.nc", years, months, days, "days since 1850-01-01", "noleap", np.full(12, FLUX)
    )
    pool = write_monthly(
        tmp_path / "b" / "src.nc",
        years,
        months,
        days,
        "days since 1850-01-01",
        "noleap",
        np.full(12, 5.0),
        units="kg m-2",
        name="cVeg",
    )
    _, flux_out = convert(tmp_path / "a", flux)
    _, pool_out = convert(tmp_path / "b", pool, spec=CVEG)
    with netCDF4.Dataset(flux_out) as ds:
        assert ds["gpp"].cell_methods == "time: mean"
    with netCDF4.Dataset(pool_out) as ds:
        assert "cell_methods" not in ds["cVeg"].ncattrs()
