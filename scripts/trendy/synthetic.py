"""Synthetic TRENDY-like files that reproduce the per-model quirks of TRENDY v13.

Each :class:`Case` writes one file whose values are an exact, known field in the *target* unit
(:func:`expected_field`), expressed in the source unit by hand-written arithmetic
(``to_source``), on the source's own time encoding, grid orientation, names and fill values.
A test converts the file and compares what ILAMB reads with :func:`expected_field`, so the
comparison does not reuse the converter's own logic. Used by the examples, tests and benchmark.
"""

from __future__ import annotations

import gzip
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import cftime
import netCDF4
import numpy as np

# udunits' year (what cf_units means by "yr"), in seconds: 365.242198781 days.
UDUNITS_YEAR_S = 31556925.9747
NOLEAP_MONTH_DAYS = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])
BASE_VALUE = {"kg m-2 s-1": 3e-8, "kg m-2": 12.0, "K": 285.0, "1": 0.4, "W m-2": 180.0}


@dataclass
class Case:
    """One quirky source file; ``name`` identifies it in tests."""

    name: str
    model: str  # directory name
    prefix: str  # file-name prefix
    variable: str  # TRENDY name in the file name
    ilamb_name: str
    target_units: str
    units: str | None  # the source unit attribute (None: no attribute)
    to_source: Callable = staticmethod(lambda x, seconds: x)  # target-unit values -> source values
    var_in_file: str | None = None
    step: str = "monthly"
    start_year: int = 1700
    n_years: int = 2
    time: str = "days_noleap"  # key of TIME_ENCODINGS
    lat_dim: str = "lat"
    lon_dim: str = "lon"
    lat_var: str | None = None  # coordinate variable name when it differs from the dimension (ELM)
    lon_var: str | None = None
    lat_decreasing: bool = False
    lon_0_360: bool = False
    lon_from_minus180: bool = False  # centres at -180, -180+d, ... (CLASSIC, ELM, JSBACH)
    gaussian: bool = False
    lat_south: float = -90.0  # ISBA-CTRIP stops at 60 S
    resolution: float = 10.0
    fill: dict = field(default_factory=lambda: {"_FillValue": -99999.0, "missing_value": -99999.0})
    fill_on_coordinates: bool = False
    extra_dim: tuple[str, int, bool] | None = None  # (name, size, has coordinate variable)
    dims_order: str = "tyx"  # "txy": (time, lon, lat)
    simulation: str = "S3"
    gzip: bool = False
    dtype: str = "f4"

    @property
    def file_name(self) -> str:
        return f"{self.prefix}_{self.simulation}_{self.variable}.nc" + (".gz" if self.gzip else "")

    def path(self, root: Path) -> Path:
        return Path(root) / self.model / self.simulation / self.file_name


# ----------------------------------------------------------------------------- grid and time


def grid_of(case: Case) -> tuple[np.ndarray, np.ndarray]:
    """(lat, lon) centres in the source's order."""
    d = case.resolution
    if case.gaussian:
        lat = np.degrees(np.arcsin(np.polynomial.legendre.leggauss(int(180 / d))[0]))
    else:
        lat = np.arange(max(case.lat_south, -90.0) + d / 2, 90.0, d)
    if case.lon_0_360:
        lon = np.arange(d / 2, 360.0, d)
    elif case.lon_from_minus180:
        lon = np.arange(-180.0, 180.0, d)
    else:
        lon = np.arange(-180.0 + d / 2, 180.0, d)
    if case.lat_decreasing:
        lat = lat[::-1]
    return lat, lon


def steps_of(case: Case) -> tuple[np.ndarray, np.ndarray]:
    """(years, months) of every step."""
    if case.step == "annual":
        years = case.start_year + np.arange(case.n_years)
        return years, np.ones_like(years)
    index = np.arange(case.n_years * 12)
    return case.start_year + index // 12, index % 12 + 1


def _dates(years, months, calendar, day=15):
    return [
        cftime.datetime(int(y), int(m), day, calendar=calendar) for y, m in zip(years, months, strict=True)
    ]


def _since(unit, reference, calendar, day=15, write_calendar=True):
    def encode(years, months, step):
        days = day if step == "monthly" else 1
        mid = [d if step == "monthly" else d.replace(month=7) for d in _dates(years, months, calendar, days)]
        values = cftime.date2num(mid, f"{unit} since {reference}", calendar=calendar)
        attrs = {"units": f"{unit} since {reference}"}
        if write_calendar:
            attrs["calendar"] = calendar
        return np.asarray(values, dtype="f8"), attrs, None

    return encode


def _months_since(reference, calendar, unit_attr="units"):
    def encode(years, months, step):
        ref_year = int(reference.split("-")[0])
        values = (years - ref_year) * 12 + (months - 1) + (0.0 if step == "monthly" else 6.0)
        return values.astype("f8"), {unit_attr: f"months since {reference}", "calendar": calendar}, None

    return encode


def _years_since(reference, calendar):
    def encode(years, months, step):
        ref_year = int(reference.split("-")[0])
        values = years - ref_year + (months - 1) / 12.0
        attrs = {"units": f"years since {reference}"}
        if calendar:
            attrs["calendar"] = calendar
        return values.astype("f8"), attrs, None

    return encode


def _yr_integer(years, months, step):
    return years.astype("i4"), {"units": "yr"}, None


def _visit(years, months, step):
    return years + (months - 0.5) / 12.0, {"units": "years since 0-Jan-1st (double)"}, None


def _bare_decimal(years, months, step):
    return years + (months - 1) / 12.0, {}, None


def _isam_month(years, months, step):
    return (
        (years * 100 + months + 0.5).astype("f8"),
        {"units": "month as %Y%m.%f", "calendar": "noleap"},
        None,
    )


def _isam_year(years, months, step):
    return (years + 0.5).astype("f8"), {"units": "year as %Y.%f", "calendar": "noleap"}, None


def _end_stamped_with_bounds(years, months, step):
    """ELM: ``days since 0001-01-01`` noleap, stamped at the END of each month, with time_bnds."""
    start = cftime.date2num(_dates(years, months, "noleap", 1), "days since 0001-01-01", calendar="noleap")
    lengths = NOLEAP_MONTH_DAYS[months - 1] if step == "monthly" else np.full(years.size, 365)
    bounds = np.stack([start, start + lengths], axis=1).astype("f8")
    return bounds[:, 1].copy(), {"units": "days since 0001-01-01", "calendar": "noleap"}, bounds


TIME_ENCODINGS = {
    "days_noleap": _since("days", "1700-01-01 00:00:00", "noleap"),
    "days_365_classic": _since("days", "1699-12-31", "365_day"),
    "days_no_calendar": _since("days", "1700-01-01", "standard", write_calendar=False),
    "days_gregorian": _since("days", "1700-01-01 00:00:00", "gregorian"),
    "hours_standard": _since("hours", "1700-01-01 00:00:00", "standard"),
    "hours_360day": _since("hours", "1700-01-01 00:00:00", "360_day"),
    "hours_360day_1900": _since("hours", "1900-01-01 00:00:00", "360_day"),
    "hours_jsbach": _since("hours", "1701-1-16 12:00:00", "proleptic_gregorian"),
    "months_cable": _months_since("1700-1-16 12:00:00", "365_day"),
    "months_lpjml": _months_since("1700-1-1", "365_day"),
    "months_dlem_unit_attr": _months_since("1700-01-01 00:00:00", "noleap", unit_attr="unit"),
    "years_cable": _years_since("1700-6-15 12:00:00", "365_day"),
    "yr_integer": _yr_integer,
    "visit_decimal_years": _visit,
    "bare_decimal_years": _bare_decimal,
    "isam_month": _isam_month,
    "isam_year": _isam_year,
    "elm_end_stamped": _end_stamped_with_bounds,
}


# ----------------------------------------------------------------------------- values


def ocean_mask(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """(lat, lon) True where there is no land: south of 60 S and a band of 'Atlantic'."""
    lat2, lon2 = np.meshgrid(lat, ((np.asarray(lon) + 180.0) % 360.0) - 180.0, indexing="ij")
    return (lat2 < -60.0) | ((lon2 > -45.0) & (lon2 < -15.0))


def expected_field(target_units: str, years, months, lat, lon) -> np.ma.MaskedArray:
    """The true field in the target unit on (time, lat, lon), masked over ocean.

    Depends on the calendar month, the year, latitude and longitude, so a shifted month, a
    flipped latitude or an unrolled longitude all change it.
    """
    years = np.asarray(years, dtype="f8")[:, None, None]
    months = np.asarray(months, dtype="f8")[:, None, None]
    lat = np.asarray(lat, dtype="f8")
    lon = ((np.asarray(lon, dtype="f8") + 180.0) % 360.0) - 180.0
    lat3, lon3 = lat[None, :, None], lon[None, None, :]
    shape = 1.0 + 0.3 * np.cos(np.radians(lat3)) + 0.1 * np.sin(np.radians(lon3)) + 0.002 * lat3 / 90.0
    season = 1.0 + 0.2 * np.sin(2 * np.pi * (months - 1) / 12.0) + 0.001 * (years - 1700.0)
    values = BASE_VALUE[target_units] * shape * season
    mask = np.broadcast_to(ocean_mask(lat, lon)[None], values.shape)
    return np.ma.masked_array(values, mask=mask)


def step_seconds(years, months, step) -> np.ndarray:
    """Noleap length of each step, in seconds (for amounts accumulated per step)."""
    days = NOLEAP_MONTH_DAYS[np.asarray(months) - 1] if step == "monthly" else np.full(len(years), 365)
    return days.astype("f8") * 86400.0


# ----------------------------------------------------------------------------- writing


def write_case(case: Case, root: Path) -> Path:
    """Write ``case`` under ``root`` (``<root>/<model>/<Sx>/<file>``) and return its path."""
    path = case.path(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    plain = path.with_suffix("") if case.gzip else path
    tmp = plain.with_name(f".tmp-{plain.name}")
    lat, lon = grid_of(case)
    years, months = steps_of(case)
    seconds = step_seconds(years, months, case.step)
    with netCDF4.Dataset(tmp, "w", format="NETCDF4") as ds:
        ds.createDimension("time", None)
        ds.createDimension(case.lat_dim, lat.size)
        ds.createDimension(case.lon_dim, lon.size)
        values, attrs, bounds = TIME_ENCODINGS[case.time](years, months, case.step)
        tvar = ds.createVariable("time", values.dtype, ("time",))
        tvar.setncatts(attrs)
        tvar[:] = values
        if bounds is not None:
            ds.createDimension("bnds", 2)
            tvar.bounds = "time_bnds"
            ds.createVariable("time_bnds", "f8", ("time", "bnds"))[:] = bounds
        coord_kwargs = {"fill_value": -9999.0} if case.fill_on_coordinates else {}
        lat_var = ds.createVariable(case.lat_var or case.lat_dim, "f8", (case.lat_dim,), **coord_kwargs)
        lat_var.units = "degrees_north"
        lat_var[:] = lat
        lon_var = ds.createVariable(case.lon_var or case.lon_dim, "f8", (case.lon_dim,), **coord_kwargs)
        lon_var.units = "degrees_east"
        lon_var[:] = lon
        dims = ["time", case.lat_dim, case.lon_dim]
        if case.dims_order == "txy":
            dims = ["time", case.lon_dim, case.lat_dim]
        if case.extra_dim:
            name, size, has_coordinate = case.extra_dim
            ds.createDimension(name, size)
            if has_coordinate:
                ds.createVariable(name, "i4", (name,))[:] = np.arange(size)
            dims.insert(1, name)
        fill = case.fill.get("_FillValue")
        var = ds.createVariable(
            case.var_in_file or case.variable,
            case.dtype,
            tuple(dims),
            fill_value=fill if fill is not None else False,
            zlib=True,
            complevel=1,
            chunksizes=tuple(1 if d == "time" else len(ds.dimensions[d]) for d in dims),
        )
        if "missing_value" in case.fill:
            var.missing_value = np.array(case.fill["missing_value"], dtype=case.dtype)
        if case.units is not None:
            var.units = case.units
        marker = fill if fill is not None else case.fill.get("missing_value")
        var.set_auto_maskandscale(False)
        # One step at a time, so that benchmark-sized files need little memory to write.
        for t in range(years.size):
            truth = expected_field(case.target_units, years[t : t + 1], months[t : t + 1], lat, lon)[0]
            values = np.asarray(case.to_source(truth.data, seconds[t]))
            if case.extra_dim:
                values = values / case.extra_dim[1]
            slab = np.where(truth.mask, marker if marker is not None else np.nan, values)
            if case.dims_order == "txy":
                slab = slab.T
            if case.extra_dim:
                slab = np.repeat(slab[None], case.extra_dim[1], axis=0)
            var[t] = slab.astype(case.dtype)
    if case.gzip:
        with (
            open(tmp, "rb") as raw,
            gzip.open(path.with_name(f".tmp-{path.name}"), "wb", compresslevel=1) as packed,
        ):
            shutil.copyfileobj(raw, packed)
        os.unlink(tmp)
        os.replace(path.with_name(f".tmp-{path.name}"), path)
    else:
        os.replace(tmp, path)
    return path


# ----------------------------------------------------------------------------- the quirks


def _times(factor):
    return lambda x, seconds: x * factor


def quirk_cases() -> list[Case]:
    """One case per quirk in ``trendy-v13-model-quirks.md`` (ISAM, VISIT, CLM pools, ...)."""
    flux = {"ilamb_name": "gpp", "target_units": "kg m-2 s-1", "variable": "gpp"}
    return [
        Case(
            "cable_months_since",
            "CABLE-POP",
            "CABLE-POP",
            units="kg m-2 s-1",
            time="months_cable",
            lat_dim="latitude",
            lon_dim="longitude",
            **flux,
        ),
        Case(
            "cable_years_since_annual",
            "CABLE-POP",
            "CABLE-POP",
            "cVeg",
            "cVeg",
            "kg m-2",
            units="kg m-2 ",
            time="years_cable",
            step="annual",
            n_years=3,
            lat_dim="latitude",
            lon_dim="longitude",
        ),
        Case(
            "cable_mrso_soil_layers_gz",
            "CABLE-POP",
            "CABLE-POP",
            "mrso",
            "mrso",
            "kg m-2",
            units="kg m-2",
            time="months_cable",
            lat_dim="latitude",
            lon_dim="longitude",
            extra_dim=("soil", 3, False),
            gzip=True,
        ),
        Case(
            "classic_latex_units",
            "CLASSIC",
            "CLASSIC",
            units="kg m$^{-2}$ s$^{-1}$",
            time="days_365_classic",
            lat_dim="latitude",
            lon_dim="longitude",
            lon_from_minus180=True,
            **flux,
        ),
        Case(
            "classic_latex_zero_width_carbon",
            "CLASSIC",
            "CLASSIC",
            "cSoil",
            "cSoil",
            "kg m-2",
            units="kg C m$^{-2}$\u200b",
            time="days_365_classic",
            step="annual",
            n_years=3,
            lat_dim="latitude",
            lon_dim="longitude",
            lon_0_360=True,
        ),
        Case(
            "clm_yr_integer_pools",
            "CLM5.0",
            "CLM6.0",
            "cVeg",
            "cVeg",
            "kg m-2",
            units="kg m-2",
            time="yr_integer",
            step="annual",
            n_years=3,
            fill={"_FillValue": -99999.0},
            fill_on_coordinates=True,
        ),
        Case(
            "clm_monthly_gC_per_year",
            "CLM5.0",
            "CLM6.0",
            units="gC m-2 yr-1",
            to_source=_times(1000.0 * UDUNITS_YEAR_S),
            fill={"_FillValue": -9999.0},
            **flux,
        ),
        Case(
            "dlem_unit_attribute_celsius",
            "DLEM",
            "DLEM",
            "tas",
            "tas",
            "K",
            units="degrees celsius",
            to_source=lambda x, s: x - 273.15,
            time="months_dlem_unit_attr",
            fill={},
        ),
        Case(
            "dlem_pr_mm_per_month",
            "DLEM",
            "DLEM",
            "pr",
            "pr",
            "kg m-2 s-1",
            units="mm",
            to_source=lambda x, s: x * s,
            time="months_dlem_unit_attr",
            fill={},
        ),
        Case(
            "dlem_kg_C", "DLEM", "DLEM", units="kg C m-2 s-1", time="months_dlem_unit_attr", fill={}, **flux
        ),
        Case(
            "ed_no_calendar_fraction_per_month",
            "ED",
            "EDv3",
            "burntArea",
            "burntArea",
            "1",
            units="fraction month-1",
            time="days_no_calendar",
            lat_dim="latitude",
            lon_dim="longitude",
            fill={"_FillValue": -99999.0},
        ),
        Case(
            "ed_lai_empty_units",
            "ED",
            "EDv3",
            "lai",
            "lai",
            "1",
            units="",
            time="days_no_calendar",
            lat_dim="latitude",
            lon_dim="longitude",
            fill={},
        ),
        Case(
            "elm_mixed_names_end_stamped_percent",
            "ELM",
            "E3SM",
            "burntArea",
            "burntArea",
            "1",
            units="%",
            to_source=_times(100.0),
            time="elm_end_stamped",
            lat_var="latitude",
            lon_var="longitude",
            lon_from_minus180=True,
        ),
        Case(
            "isam_month_as_ymd_lon360",
            "ISAM",
            "ISAM",
            units="kg  m-2 s-1",
            time="isam_month",
            lon_0_360=True,
            fill={"_FillValue": -9999.0, "missing_value": -9999.0},
            **flux,
        ),
        Case(
            "isam_upper_case_LAI",
            "ISAM",
            "ISAM",
            "LAI",
            "lai",
            "1",
            units="m2/m2",
            time="isam_month",
            lon_0_360=True,
            fill={"_FillValue": -9999.0},
        ),
        Case(
            "isam_year_as_kgC_slash",
            "ISAM",
            "ISAM",
            "cSoil",
            "cSoil",
            "kg m-2",
            units="KgC/m2",
            time="isam_year",
            step="annual",
            n_years=3,
            lon_0_360=True,
            fill={"_FillValue": -9999.0},
        ),
        Case(
            "isba_gregorian_60S_percent",
            "ISBA-CTRIP",
            "ISBA-CTRIP",
            "burntArea",
            "burntArea",
            "1",
            units="%",
            to_source=_times(100.0),
            time="days_gregorian",
            lat_south=-60.0,
            fill={"_FillValue": 1e20, "missing_value": 1e20},
        ),
        Case(
            "isba_pr_hours_standard",
            "ISBA-CTRIP",
            "ISBA-CTRIP",
            "pr",
            "pr",
            "kg m-2 s-1",
            units="Kg/m2/s",
            time="hours_standard",
            lat_dim="latitude",
            lon_dim="longitude",
            fill={"_FillValue": -9e33, "missing_value": -9e33},
        ),
        Case(
            "jsbach_1701_gaussian_hours",
            "JSBACH",
            "JSBACH",
            units="kg m-2 s-1",
            time="hours_jsbach",
            start_year=1701,
            gaussian=True,
            lat_dim="latitude",
            lon_dim="longitude",
            lon_from_minus180=True,
            resolution=7.5,
            **flux,
        ),
        Case(
            "jules_fill_999",
            "JULES",
            "JULES",
            "evapotrans",
            "et",
            "kg m-2 s-1",
            units="kg/m2/s",
            fill={"_FillValue": -999.0, "missing_value": -999.0},
        ),
        Case(
            "lpjguess_lai_without_units",
            "LPJ-GUESS",
            "LPJ-GUESS",
            "lai",
            "lai",
            "1",
            units=None,
            lat_dim="latitude",
            lon_dim="longitude",
        ),
        Case(
            "lpjguess_annual_nbp",
            "LPJ-GUESS",
            "LPJ-GUESS",
            "nbp",
            "nbp",
            "kg m-2 s-1",
            units="kg m-2 s-1",
            step="annual",
            n_years=3,
            lat_dim="latitude",
            lon_dim="longitude",
        ),
        Case(
            "lpjml_months_since_kelvin",
            "LPJml",
            "LPJmL",
            "tas",
            "tas",
            "K",
            units="Kelvin",
            time="months_lpjml",
            lat_dim="latitude",
            lon_dim="longitude",
            fill={"_FillValue": -99999.0},
        ),
        Case(
            "lpjwsl_unitless_gregorian",
            "LPJwsl",
            "LPJwsl",
            "lai",
            "lai",
            "1",
            units="unitless",
            time="days_gregorian",
            lat_dim="latitude",
            lon_dim="longitude",
        ),
        Case(
            "ocn_caret_exponents",
            "OCN",
            "OCN",
            units="kg m^-2 s^-1",
            time="days_365_classic",
            lat_dim="latitude",
            lon_dim="longitude",
            **flux,
        ),
        Case(
            "orchidee_decreasing_latitude_dash",
            "ORCHIDEE",
            "ORCHIDEE",
            "burntArea",
            "burntArea",
            "1",
            units="-",
            lat_decreasing=True,
            lat_dim="latitude",
            lon_dim="longitude",
            fill={"_FillValue": -99999.0},
        ),
        Case(
            "sdgvm_360day_per_year_prose",
            "SDGVM",
            "SDGVM",
            units="kg m-2 yr-1, per unit land area occupied by the PFT",
            to_source=_times(UDUNITS_YEAR_S),
            time="hours_360day",
            lat_dim="latitude",
            lon_dim="longitude",
            fill={"_FillValue": -99999.0},
            **flux,
        ),
        Case(
            "sdgvm_fFire_from_1900",
            "SDGVM",
            "SDGVM",
            "fFire",
            "fFire",
            "kg m-2 s-1",
            units="kg m-2 s-1",
            time="hours_360day_1900",
            start_year=1900,
            lat_dim="latitude",
            lon_dim="longitude",
            fill={"_FillValue": -99999.0},
        ),
        Case(
            "visit_decimal_years_missing_value_only",
            "VISIT-UT",
            "visit-ut",
            units="kg m-2 s-1",
            time="visit_decimal_years",
            fill={"missing_value": -99999.0},
            **flux,
        ),
        Case(
            "elm_fates_bare_decimal_years",
            "ELM-FATES",
            "ELM-FATES",
            "rsds",
            "rsds",
            "W m-2",
            units="W m-2",
            time="bare_decimal_years",
            start_year=1701,
        ),
        Case(
            "time_lon_lat_order",
            "IBIS",
            "IBIS",
            "rh",
            "rh",
            "kg m-2 s-1",
            units="kg m-2 s-1",
            dims_order="txy",
            lat_dim="latitude",
            lon_dim="longitude",
        ),
        Case(
            "ibis_brackets_fraction",
            "IBIS",
            "IBIS",
            "burntArea",
            "burntArea",
            "1",
            units="[]",
            lat_dim="latitude",
            lon_dim="longitude",
        ),
        Case(
            "lpx_double_precision",
            "LPX",
            "LPX-Bern",
            "cLitter",
            "cLitter",
            "kg m-2",
            units="kg m-2",
            step="annual",
            n_years=3,
            dtype="f8",
            lat_dim="latitude",
            lon_dim="longitude",
        ),
    ]


def write_truncated(case: Case, root: Path) -> Path:
    """A file cut in half, as left by an interrupted transfer (LPX's corrupt snowdepth)."""
    path = write_case(case, root)
    size = path.stat().st_size
    with open(path, "r+b") as handle:
        handle.truncate(size // 2)
    return path


def write_without_time(case: Case, root: Path) -> Path:
    """A (lat, lon) field with no time axis at all."""
    path = case.path(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    lat, lon = grid_of(case)
    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("lat", lat.size)
        ds.createDimension("lon", lon.size)
        ds.createVariable("lat", "f8", ("lat",))[:] = lat
        ds.createVariable("lon", "f8", ("lon",))[:] = lon
        var = ds.createVariable(case.variable, "f4", ("lat", "lon"))
        var.units = case.units or "1"
        var[:] = np.ones((lat.size, lon.size))
    return path


def bad_cases() -> dict[str, tuple[Case, Callable]]:
    """name -> (case, writer) for inputs that must fail with a clear error naming the file."""
    gpp = {"ilamb_name": "gpp", "target_units": "kg m-2 s-1", "variable": "gpp"}
    bad = {"simulation": "S1", **gpp}
    return {
        "truncated": (Case("truncated", "LPX", "LPX-Bern", units="kg m-2 s-1", **bad), write_truncated),
        "no_time_axis": (
            Case("no_time_axis", "JULES", "JULES", units="kg m-2 s-1", **bad),
            write_without_time,
        ),
        "unknown_unit": (Case("unknown_unit", "OCN", "OCN", units="m^2gridcell", **bad), write_case),
    }


def with_size(case: Case, resolution: float, n_years: int, simulation: str | None = None) -> Case:
    """The same quirk at another grid resolution, length or simulation."""
    return replace(case, resolution=resolution, n_years=n_years, simulation=simulation or case.simulation)


# ----------------------------------------------------------------------------- static fields


def land_fraction(lat, lon) -> np.ndarray:
    """The true land fraction on (lat, lon): 0 over ocean, varying with latitude and longitude."""
    lat = np.asarray(lat, dtype="f8")[:, None]
    lon = ((np.asarray(lon, dtype="f8") + 180.0) % 360.0 - 180.0)[None, :]
    frac = 0.55 + 0.25 * np.cos(np.radians(lat)) + 0.15 * np.sin(np.radians(lon))
    return np.where(ocean_mask(lat[:, 0], lon[0]), 0.0, frac)


def cell_area_m2(lat, lon, resolution: float) -> np.ndarray:
    """Area of each (lat, lon) cell of a regular grid on a sphere of radius 6371 km."""
    lat = np.asarray(lat, dtype="f8")
    south, north = (
        np.radians(np.clip(lat - resolution / 2, -90, 90)),
        np.radians(np.clip(lat + resolution / 2, -90, 90)),
    )
    band = 6371e3**2 * np.radians(resolution) * (np.sin(north) - np.sin(south))
    return np.repeat(band[:, None], np.asarray(lon).size, axis=1)


def write_static(
    root: Path,
    model: str,
    prefix: str,
    simulation: str,
    name: str,
    resolution: float = 10.0,
    percent: bool = False,
    lon_start: float | None = None,
    lat_decreasing: bool = False,
) -> Path:
    """A TRENDY static file ``<prefix>_<Sx>_<name>.nc``: ``land_fraction``/``sftlf`` or ``areacella``.

    The land fraction is written in percent (units ``%``) when ``percent``; the cell area in km2,
    so both need a unit conversion. ``lon_start=0`` with ``lat_decreasing`` gives CLASSIC's
    0..359 grid (the data files of the same model run -180..179).
    """
    case = Case(name, model, prefix, name, name, "1", None, resolution=resolution, simulation=simulation)
    lat, lon = grid_of(case)
    if lon_start is not None:
        lon = lon_start + resolution * np.arange(lon.size)
    if lat_decreasing:
        lat = lat[::-1]
    path = case.path(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{path.name}")
    with netCDF4.Dataset(tmp, "w") as ds:
        ds.createDimension("lat", lat.size)
        ds.createDimension("lon", lon.size)
        ds.createVariable("lat", "f8", ("lat",))[:] = lat
        ds.createVariable("lon", "f8", ("lon",))[:] = lon
        if name == "areacella":
            var = ds.createVariable("areacella", "f4", ("lat", "lon"))
            var.units = "km2"
            var[:] = cell_area_m2(lat, lon, resolution) / 1e6
        else:
            var = ds.createVariable("sftlf", "f4", ("lat", "lon"), fill_value=-99999.0)
            var.units = "%" if percent else "1"
            var[:] = land_fraction(lat, lon) * (100.0 if percent else 1.0)
    os.replace(tmp, path)
    return path


# ----------------------------------------------------------------------------- ILAMB reference data

NOLEAP_MONTH_START = np.concatenate([[0], np.cumsum(NOLEAP_MONTH_DAYS)[:-1]])
REFERENCE_VARIABLES = {
    "gpp": ("Gross Primary Productivity", "Carbon Cycle", "kg m-2 s-1"),
    "tas": ("Surface Air Temperature", "Forcings", "K"),
    "lai": ("Leaf Area Index", "Carbon Cycle", "1"),
}


def write_reference(
    path: Path, variable: str, units: str, first_year: int, n_years: int, resolution: float = 10.0
):
    """A reference dataset in ILAMB's observation format: CF, monthly noleap bounds, lat/lon bounds.

    The values are :func:`expected_field`, the truth every synthetic model file encodes, so a
    correctly converted model scores (near) 1 against it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    lat = np.arange(-90.0 + resolution / 2, 90.0, resolution)
    lon = np.arange(-180.0 + resolution / 2, 180.0, resolution)
    index = np.arange(n_years * 12)
    years, months = first_year + index // 12, index % 12 + 1
    start = (years - 1850) * 365 + NOLEAP_MONTH_START[months - 1]
    end = start + NOLEAP_MONTH_DAYS[months - 1]
    tmp = path.with_name(f".tmp-{path.name}")
    with netCDF4.Dataset(tmp, "w") as ds:
        ds.createDimension("time", None)
        ds.createDimension("lat", lat.size)
        ds.createDimension("lon", lon.size)
        ds.createDimension("nb", 2)
        t = ds.createVariable("time", "f8", ("time",))
        t.setncatts(
            {
                "units": "days since 1850-01-01",
                "calendar": "noleap",
                "bounds": "time_bnds",
                "standard_name": "time",
            }
        )
        t[:] = 0.5 * (start + end)
        ds.createVariable("time_bnds", "f8", ("time", "nb"))[:] = np.stack([start, end], axis=1)
        for name, centres, axis_units in (("lat", lat, "degrees_north"), ("lon", lon, "degrees_east")):
            var = ds.createVariable(name, "f8", (name,))
            var.setncatts({"units": axis_units, "bounds": f"{name}_bnds"})
            var[:] = centres
            edges = np.stack([centres - resolution / 2, centres + resolution / 2], axis=1)
            ds.createVariable(f"{name}_bnds", "f8", (name, "nb"))[:] = edges
        var = ds.createVariable(variable, "f4", ("time", "lat", "lon"), fill_value=np.float32(1e20))
        var.units = units
        var[:] = expected_field(units, years, months, lat, lon)
        ds.setncatts(
            {
                "title": f"synthetic {variable} reference (hpcpipe trendy tests)",
                "institution": "none: generated",
                "source": "scripts/trendy/synthetic.py expected_field",
                "history": "generated",
                "references": "none",
                "Conventions": "CF-1.8",
            }
        )
    os.replace(tmp, path)
    return path


def write_benchmarks(root: Path, variables: list[str], first_year: int = 1700, n_years: int = 13) -> Path:
    """An ILAMB benchmark configuration over synthetic references: ``root/benchmarks.cfg`` and ``root/DATA``."""
    root = Path(root)
    sections: dict[str, list[str]] = {}
    for variable in variables:
        title, section, units = REFERENCE_VARIABLES[variable]
        write_reference(
            root / "DATA" / variable / "Synthetic" / f"{variable}.nc", variable, units, first_year, n_years
        )
        sections.setdefault(section, []).append(
            f'[h2: {title}]\nvariable = "{variable}"\n\n[Synthetic]\nsource = "DATA/{variable}/Synthetic/{variable}.nc"\n'
        )
    text = "# ILAMB benchmark configuration over synthetic references (hpcpipe trendy)\n"
    for section, blocks in sections.items():
        text += f'\n[h1: {section}]\nbgcolor = "#ECFFE6"\n\n' + "\n".join(blocks)
    cfg = root / "benchmarks.cfg"
    cfg.write_text(text)
    return cfg
