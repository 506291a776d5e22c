"""Convert one TRENDY NetCDF file into an ILAMB-ready CF file, streaming along time.

``convert_file`` is the whole conversion; ``convert_to_stage`` wraps it for the
``trendy_convert`` rule: it always leaves a ``status.json`` beside the converted file (or
instead of it), so a bad input fails its own ``trendy_publish`` job while the report still
lists it.
"""

import contextlib
import gzip
import logging
import os
import re
import shutil
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import netCDF4
import numpy as np
from cf_units import Unit
from common import atomic_path, file_digest, setup_logging, write_json

from trendy import CONVERTER_VERSION
from trendy.timeaxis import (
    OUTPUT_CALENDAR,
    OUTPUT_UNITS,
    TimeAxis,
    TimeAxisError,
    decode_time,
    time_units_attribute,
)
from trendy.units import UnitError, clean_unit, unit_converter

log = logging.getLogger("hpcpipe.trendy")
FILL_VALUE = np.float32(1e20)
LAT_NAMES = ("lat", "latitude", "nav_lat", "y", "rlat")
LON_NAMES = ("lon", "longitude", "nav_lon", "x", "rlon")


class ConversionError(ValueError):
    """The input cannot be converted; the message says why (the caller adds the file name)."""


@dataclass
class VariableSpec:
    """What to make of one TRENDY variable (from the config's ``variables`` mapping)."""

    trendy_name: str
    ilamb_name: str
    units: str
    standard_name: str = ""
    long_name: str = ""
    extra_dims: str = "error"  # or "sum": add up layers / pools (e.g. soil layers of mrso)
    source_names: list[str] = field(default_factory=list)
    static: bool = False  # a (lat, lon) field without time: land fraction, cell area


@dataclass
class Grid:
    """Where the horizontal axes are in the source, and how to reorder them for the output."""

    lat: np.ndarray
    lon: np.ndarray
    lat_order: np.ndarray
    lon_order: np.ndarray

    @property
    def lat_out(self) -> np.ndarray:
        return self.lat[self.lat_order]

    @property
    def lon_out(self) -> np.ndarray:
        return shift_longitude(self.lon)[self.lon_order]


def shift_longitude(lon: np.ndarray) -> np.ndarray:
    """Longitudes on [-180, 180) (0..360 grids such as ISAM's and CLASSIC's land fraction).

    180 becomes -180: CLASSIC's 0..359 land fraction then lands on the same -180..179 axis as its
    data, cell for cell (ILAMB multiplies the two without aligning coordinates).
    """
    lon = np.asarray(lon, dtype=np.float64)
    return np.where(lon >= 180.0, lon - 360.0, lon)


def cell_bounds(centres: np.ndarray, limit: float) -> np.ndarray:
    """(n, 2) bounds half-way between centres, extrapolated at the ends and clipped to ±limit."""
    centres = np.asarray(centres, dtype=np.float64)
    if centres.size == 1:
        return np.array([[max(centres[0] - 0.5, -limit), min(centres[0] + 0.5, limit)]])
    mid = 0.5 * (centres[1:] + centres[:-1])
    edges = np.concatenate(
        [[centres[0] - (mid[0] - centres[0])], mid, [centres[-1] + (centres[-1] - mid[-1])]]
    )
    edges = np.clip(edges, -limit, limit)
    return np.stack([edges[:-1], edges[1:]], axis=1)


def find_data_variable(dataset: netCDF4.Dataset, spec: VariableSpec) -> netCDF4.Variable:
    """The variable to convert: its TRENDY name (any case), an alternate name, or the only candidate.

    CLASSIC's ``land_fraction`` file holds ``sftlf``; ISAM writes ``LAI`` for ``lai``.
    """
    by_lower = {name.lower(): name for name in dataset.variables}
    for name in [spec.trendy_name, spec.ilamb_name, *spec.source_names]:
        if name.lower() in by_lower:
            return dataset.variables[by_lower[name.lower()]]
    coordinates = set(dataset.dimensions)
    bounds = {v.getncattr("bounds") for v in dataset.variables.values() if "bounds" in v.ncattrs()}
    candidates = [
        v
        for name, v in dataset.variables.items()
        if name not in coordinates and name not in bounds and v.ndim >= 2
    ]
    if len(candidates) == 1:
        return candidates[0]
    raise ConversionError(
        f"no variable named {spec.trendy_name!r} (or {spec.ilamb_name!r}); "
        f"variables present: {', '.join(dataset.variables) or 'none'}"
    )


def classify_dimensions(variable: netCDF4.Variable) -> tuple[str | None, str | None, str | None, list[str]]:
    """(time, lat, lon, extra) dimension names of the data variable, by name."""
    time_dim = lat_dim = lon_dim = None
    extra = []
    for dim in variable.dimensions:
        low = dim.lower()
        if "time" in low or low in ("t", "month", "year"):
            time_dim = time_dim or dim
        elif low in LAT_NAMES or low.startswith("lat"):
            lat_dim = lat_dim or dim
        elif low in LON_NAMES or low.startswith("lon"):
            lon_dim = lon_dim or dim
        else:
            extra.append(dim)
    return time_dim, lat_dim, lon_dim, extra


def coordinate_values(dataset: netCDF4.Dataset, dim: str, prefixes: tuple[str, ...]) -> np.ndarray:
    """Values of a horizontal coordinate: the variable named like its dimension, or a 1-D variable on it.

    ELM names its dimensions ``lat``/``lon`` and the coordinate variables ``latitude``/``longitude``.
    """
    candidates = []
    if dim in dataset.variables and dataset.variables[dim].dimensions == (dim,):
        candidates.append(dataset.variables[dim])
    for name, var in dataset.variables.items():
        if var.dimensions == (dim,) and name.lower().startswith(prefixes) and var not in candidates:
            candidates.append(var)
    if not candidates:
        raise ConversionError(f"dimension {dim!r} has no coordinate variable")
    var = candidates[0]
    var.set_auto_mask(False)
    values = np.asarray(var[:], dtype=np.float64)
    if not np.all(np.isfinite(values)) or np.any(np.abs(values) > 1e10):
        raise ConversionError(f"coordinate {var.name!r} has missing values")
    return values


def plan_grid(lat: np.ndarray, lon: np.ndarray) -> Grid:
    """Increasing latitude, longitude on -180..180 in increasing order (the data follow)."""
    lat_order = np.argsort(lat, kind="stable")
    lon_order = np.argsort(shift_longitude(lon), kind="stable")
    grid = Grid(lat=lat, lon=lon, lat_order=lat_order, lon_order=lon_order)
    if np.any(np.diff(grid.lat_out) <= 0) or np.any(np.diff(grid.lon_out) <= 0):
        raise ConversionError("latitude or longitude has repeated values")
    if np.any(np.abs(grid.lat_out) > 90.0):
        raise ConversionError("latitude outside -90..90")
    return grid


def read_time_axis(dataset: netCDF4.Dataset, time_dim: str, missing_calendar: str = "standard") -> TimeAxis:
    """Decode the source time coordinate (with its bounds when present); see :func:`decode_time`."""
    if time_dim not in dataset.variables:
        raise TimeAxisError(f"time dimension {time_dim!r} has no coordinate variable")
    tvar = dataset.variables[time_dim]
    tvar.set_auto_mask(False)
    units = time_units_attribute(tvar)
    calendar = tvar.getncattr("calendar") if "calendar" in tvar.ncattrs() else None
    bounds = None
    bounds_name = tvar.getncattr("bounds") if "bounds" in tvar.ncattrs() else None
    for name in [bounds_name, "time_bnds", "time_bounds"]:
        if name and name in dataset.variables and dataset.variables[name].ndim == 2:
            bvar = dataset.variables[name]
            bvar.set_auto_mask(False)
            bounds = bvar[:]
            break
    values = np.asarray(tvar[:], dtype=np.float64)
    return decode_time(values, units, calendar, bounds, missing_calendar=missing_calendar)


def slab_steps(n_lat: int, n_lon: int, extra: int, slab_mb: float) -> int:
    """Time steps per slab so that one float64 slab stays near ``slab_mb`` (memory is flat in file length)."""
    per_step = n_lat * n_lon * max(extra, 1) * 8
    return max(1, int(slab_mb * 1e6 // per_step))


def is_flux(units: str) -> bool:
    """True for a unit per time (``kg m-2 s-1``, ``W m-2``): a monthly value is a mean over the month."""
    return bool(re.search(r"(^|\.)s-\d", Unit(units).definition))


def source_unit(name: str, raw: str | None, target: str, aliases: dict | None, warnings: list[str]) -> str:
    """The cleaned source unit; a missing ``units`` attribute is an error unless the target is dimensionless."""
    if raw is None:
        if Unit(target).is_dimensionless():
            warnings.append(f"variable {name!r} has no units attribute: read as dimensionless ('1')")
            return "1"
        raise UnitError(
            f"variable {name!r} has no units attribute (expected a unit convertible to {target!r})"
        )
    return clean_unit((aliases or {}).get(raw.strip(), raw))


def unit_attribute(variable: netCDF4.Variable) -> str | None:
    for name in ("units", "unit", "Units"):
        if name in variable.ncattrs():
            return str(variable.getncattr(name))
    return None


@contextlib.contextmanager
def opened_source(source: Path, scratch_dir: Path):
    """Open a ``.nc`` or ``.nc.gz`` file read-only; a gzipped file is inflated into ``scratch_dir``."""
    if source.name.endswith(".gz"):
        fd, tmp = tempfile.mkstemp(prefix=".inflate-", suffix=".nc", dir=scratch_dir)
        try:
            with os.fdopen(fd, "wb") as out, gzip.open(source, "rb") as packed:
                shutil.copyfileobj(packed, out, 1 << 22)
            try:
                dataset = netCDF4.Dataset(tmp, "r")
            except OSError as err:
                raise ConversionError(f"inflated file cannot be opened as NetCDF: {err}") from None
            with dataset:
                yield dataset
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
    else:
        try:
            dataset = netCDF4.Dataset(source, "r")
        except OSError as err:
            raise ConversionError(f"cannot be opened as NetCDF (truncated or corrupt?): {err}") from None
        with dataset:
            yield dataset


def write_axes(out: netCDF4.Dataset, axis: TimeAxis | None, grid: Grid) -> None:
    """Coordinates and bounds in the form ILAMB reads without guessing (no time for a static field)."""
    out.createDimension("lat", grid.lat.size)
    out.createDimension("lon", grid.lon.size)
    out.createDimension("nb", 2)
    if axis is not None:
        write_time(out, axis)
    for name, values, limit, attrs in [
        ("lat", grid.lat_out, 90.0, {"units": "degrees_north", "standard_name": "latitude", "axis": "Y"}),
        ("lon", grid.lon_out, 180.0, {"units": "degrees_east", "standard_name": "longitude", "axis": "X"}),
    ]:
        var = out.createVariable(name, "f8", (name,))
        var.setncatts({**attrs, "long_name": attrs["standard_name"], "bounds": f"{name}_bnds"})
        var[:] = values
        out.createVariable(f"{name}_bnds", "f8", (name, "nb"))[:] = cell_bounds(values, limit)


def write_time(out: netCDF4.Dataset, axis: TimeAxis) -> None:
    out.createDimension("time", axis.years.size)
    time_var = out.createVariable("time", "f8", ("time",))
    time_var.setncatts(
        {
            "units": OUTPUT_UNITS,
            "calendar": OUTPUT_CALENDAR,
            "standard_name": "time",
            "long_name": "time",
            "axis": "T",
            "bounds": "time_bounds",
        }
    )
    time_var[:] = axis.values
    out.createVariable("time_bounds", "f8", ("time", "nb"))[:] = axis.bounds


def convert_file(
    source: str | os.PathLike,
    output: str | os.PathLike,
    spec: VariableSpec,
    model: str,
    simulation: str,
    unit_aliases: dict[str, str] | None = None,
    slab_mb: float = 32.0,
    compression_level: int = 1,
    ilamb_check: bool = True,
    missing_calendar: str = "standard",
) -> dict:
    """Convert ``source`` into ``output`` atomically and return what was done (for the report).

    ``missing_calendar`` is the calendar a time axis without one is read in (a warning in
    ``info["warnings"]`` says so). Raises :class:`ConversionError`, :class:`UnitError` or
    :class:`TimeAxisError` (or the NetCDF library's error for an unreadable file) without leaving
    ``output`` behind; a variable whose every value is missing is an error too.
    """
    source, output = Path(source), Path(output)
    info: dict = {"source": str(source), "output": str(output)}
    output.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(output, suffix=".nc") as tmp, opened_source(source, output.parent) as dataset:
        variable = find_data_variable(dataset, spec)
        variable.set_auto_maskandscale(True)
        time_dim, lat_dim, lon_dim, extra = classify_dimensions(variable)
        if spec.static:
            info.update(convert_static(dataset, variable, tmp, spec, model, simulation, unit_aliases, source))
            return info
        if time_dim is None:
            raise ConversionError(
                f"variable {variable.name!r} has no time axis (dimensions {variable.dimensions})"
            )
        if lat_dim is None or lon_dim is None:
            raise ConversionError(
                f"variable {variable.name!r} has no lat/lon dimensions ({variable.dimensions})"
            )
        extra_sized = [d for d in extra if len(dataset.dimensions[d]) > 1]
        if extra_sized and spec.extra_dims != "sum":
            raise ConversionError(
                f"variable {variable.name!r} has extra dimensions {extra_sized}; "
                "set extra_dims: sum for this variable in the config to add them up"
            )
        axis = read_time_axis(dataset, time_dim, missing_calendar)
        if axis.years.size != len(dataset.dimensions[time_dim]):
            raise TimeAxisError("time coordinate and time dimension differ in length")
        grid = plan_grid(
            coordinate_values(dataset, lat_dim, ("lat", "nav_lat")),
            coordinate_values(dataset, lon_dim, ("lon", "nav_lon")),
        )
        raw_units = unit_attribute(variable)
        warnings = list(axis.warnings)
        source_units = source_unit(variable.name, raw_units, spec.units, unit_aliases, warnings)
        convert, how = unit_converter(source_units, spec.units, axis.step, axis.calendar)
        info.update(
            variable=variable.name,
            units_from=raw_units if raw_units is not None else "",
            units_cleaned=source_units,
            units_to=spec.units,
            unit_conversion=how,
            time_units=axis.source_units,
            calendar=axis.source_calendar or f"{axis.calendar} (assumed: none in file)",
            warnings="; ".join(warnings),
            time_step=axis.step,
            time_start=axis.span()[0],
            time_end=axis.span()[1],
            n_steps=int(axis.years.size),
            n_lat=int(grid.lat.size),
            n_lon=int(grid.lon.size),
            extra_dims_summed=",".join(extra_sized),
        )
        # Source axis positions: the slab is transposed to (time, extra..., lat, lon).
        order = [variable.dimensions.index(d) for d in (time_dim, *extra, lat_dim, lon_dim)]
        n_extra = int(np.prod([len(dataset.dimensions[d]) for d in extra])) if extra else 1
        steps_per_slab = slab_steps(grid.lat.size, grid.lon.size, n_extra, slab_mb)
        info["source_sha256"] = file_digest(source)
        with netCDF4.Dataset(tmp, "w", format="NETCDF4") as out:
            write_axes(out, axis, grid)
            data = out.createVariable(
                spec.ilamb_name,
                "f4",
                ("time", "lat", "lon"),
                zlib=compression_level > 0,
                complevel=max(compression_level, 1),
                shuffle=True,
                chunksizes=(1, grid.lat.size, grid.lon.size),
                fill_value=FILL_VALUE,
            )
            attrs = {"units": spec.units, "long_name": spec.long_name or spec.ilamb_name}
            if spec.standard_name:
                attrs["standard_name"] = spec.standard_name
            if is_flux(spec.units):
                attrs["cell_methods"] = "time: mean"
            data.setncatts(attrs)
            out.setncatts(
                {
                    "Conventions": "CF-1.8",
                    "title": f"{model} {simulation} {spec.ilamb_name} (TRENDY, converted for ILAMB)",
                    "institution": f"TRENDY modelling group of {model}",
                    "source": f"TRENDY model {model}, simulation {simulation}, variable {spec.trendy_name}",
                    "history": f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} converted by hpcpipe trendy {CONVERTER_VERSION}",
                    "references": "https://github.com/rubisco-sfa/ILAMB (format expected by ILAMB 2.7.3)",
                    "comment": f"units converted from {raw_units!r} ({how})",
                    "trendy_model": model,
                    "trendy_simulation": simulation,
                    "trendy_variable": spec.trendy_name,
                    "source_file": str(source.resolve()),
                    "source_sha256": info["source_sha256"],
                    "source_units": raw_units if raw_units is not None else "",
                    "source_time_units": axis.source_units,
                    "source_calendar": axis.source_calendar,
                    "converter": "hpcpipe trendy (scripts/trendy/convert.py)",
                    "converter_version": CONVERTER_VERSION,
                }
            )
            seconds = axis.seconds
            identity = np.array_equal(grid.lat_order, np.arange(grid.lat.size)) and np.array_equal(
                grid.lon_order, np.arange(grid.lon.size)
            )
            reorder = None if identity else (slice(None), grid.lat_order[:, None], grid.lon_order[None, :])
            n_valid = 0
            for start in range(0, axis.years.size, steps_per_slab):
                stop = min(start + steps_per_slab, axis.years.size)
                index = [slice(None)] * variable.ndim
                index[order[0]] = slice(start, stop)
                slab = variable[tuple(index)]
                values = np.ma.getdata(slab).astype(np.float64, copy=False)
                mask = np.ma.getmaskarray(slab) | ~np.isfinite(values)
                values = np.transpose(values, order)
                mask = np.transpose(mask, order)
                if extra:
                    lead = values.shape[0]
                    values = values.reshape(lead, -1, grid.lat.size, grid.lon.size)
                    mask = mask.reshape(values.shape)
                    all_missing = mask.all(axis=1)
                    values = np.where(mask, 0.0, values).sum(axis=1)
                    mask = all_missing
                if reorder is not None:  # one gather for both axes: a single copy of the slab
                    values, mask = values[reorder], mask[reorder]
                converted = convert(values, seconds[start:stop])
                del values
                mask |= ~np.isfinite(converted)
                converted[mask] = FILL_VALUE
                n_valid += int(mask.size - np.count_nonzero(mask))
                data[start:stop] = converted.astype(np.float32)
            if n_valid == 0:
                raise ConversionError(
                    f"every value of {variable.name!r} is missing (NaN, fill or masked): nothing to publish"
                )
            info["valid_values"] = n_valid
        if ilamb_check:
            began = time.perf_counter()
            info["ilamb_check"] = check_with_ilamb(tmp, spec, axis)
            info["ilamb_check_seconds"] = round(time.perf_counter() - began, 3)
    return info


def convert_static(
    dataset, variable, tmp: Path, spec: VariableSpec, model, simulation, unit_aliases, source
) -> dict:
    """A (lat, lon) field (land fraction, cell area) on the same grid handling as the fluxes.

    A time axis of length one is dropped; a longer one is refused (which step would ILAMB
    want?). A land fraction in percent (``%``, or values above 1 under a dimensionless unit)
    becomes a fraction, with a warning in the second case.
    """
    time_dim, lat_dim, lon_dim, extra = classify_dimensions(variable)
    if lat_dim is None or lon_dim is None:
        raise ConversionError(f"variable {variable.name!r} has no lat/lon dimensions ({variable.dimensions})")
    extra_sized = [d for d in extra if len(dataset.dimensions[d]) > 1]
    if extra_sized:
        raise ConversionError(f"static field {variable.name!r} has extra dimensions {extra_sized}")
    if time_dim is not None and len(dataset.dimensions[time_dim]) > 1:
        raise ConversionError(
            f"static field {variable.name!r} has {len(dataset.dimensions[time_dim])} time steps; expected one or none"
        )
    grid = plan_grid(
        coordinate_values(dataset, lat_dim, ("lat", "nav_lat")),
        coordinate_values(dataset, lon_dim, ("lon", "nav_lon")),
    )
    warnings: list[str] = []
    raw_units = unit_attribute(variable)
    source_units = source_unit(variable.name, raw_units, spec.units, unit_aliases, warnings)
    convert, how = unit_converter(source_units, spec.units)
    # Length-one dimensions (time, a single layer) are read at index 0; lat before lon after.
    slab = variable[tuple(slice(None) if d in (lat_dim, lon_dim) else 0 for d in variable.dimensions)]
    if variable.dimensions.index(lat_dim) > variable.dimensions.index(lon_dim):
        slab = slab.T
    values = np.ma.getdata(slab).astype(np.float64)
    mask = np.ma.getmaskarray(slab) | ~np.isfinite(values)
    values = values[np.ix_(grid.lat_order, grid.lon_order)]
    mask = mask[np.ix_(grid.lat_order, grid.lon_order)]
    converted = convert(values)
    if Unit(spec.units).is_dimensionless() and source_units == "1":
        largest = np.max(converted[~mask]) if (~mask).any() else 0.0
        if 1.0 + 1e-6 < largest <= 100.0 + 1e-6:
            converted = converted / 100.0
            how = "percent to fraction (values up to 100 under a dimensionless unit)"
            warnings.append(
                f"{variable.name!r} has values up to {largest:g} under units {raw_units!r}: read as percent"
            )
        elif largest > 100.0 + 1e-6:
            raise ConversionError(
                f"{variable.name!r} has values up to {largest:g}: neither a fraction nor a percent"
            )
    mask |= ~np.isfinite(converted)
    if mask.all():
        raise ConversionError(
            f"every value of {variable.name!r} is missing (NaN, fill or masked): nothing to publish"
        )
    converted[mask] = FILL_VALUE
    with netCDF4.Dataset(tmp, "w", format="NETCDF4") as out:
        write_axes(out, None, grid)
        data = out.createVariable(
            spec.ilamb_name, "f4", ("lat", "lon"), zlib=True, complevel=1, fill_value=FILL_VALUE
        )
        attrs = {"units": spec.units, "long_name": spec.long_name or spec.ilamb_name}
        if spec.standard_name:
            attrs["standard_name"] = spec.standard_name
        data.setncatts(attrs)
        data[:] = converted.astype(np.float32)
        out.setncatts(
            {
                "Conventions": "CF-1.8",
                "title": f"{model} {simulation} {spec.ilamb_name} (TRENDY, converted for ILAMB)",
                "source": f"TRENDY model {model}, simulation {simulation}, variable {spec.trendy_name}",
                "history": f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} converted by hpcpipe trendy {CONVERTER_VERSION}",
                "comment": f"units converted from {raw_units!r} ({how})",
                "source_file": str(Path(source).resolve()),
                "converter_version": CONVERTER_VERSION,
            }
        )
    return {
        "variable": variable.name,
        "units_from": raw_units if raw_units is not None else "",
        "units_cleaned": source_units,
        "units_to": spec.units,
        "unit_conversion": how,
        "time_step": "static",
        "n_lat": int(grid.lat.size),
        "n_lon": int(grid.lon.size),
        "warnings": "; ".join(warnings),
        "source_sha256": file_digest(source),
        "valid_values": int(mask.size - np.count_nonzero(mask)),
    }


def check_with_ilamb(path: Path, spec: VariableSpec, axis: TimeAxis) -> str:
    """Load the first year of the converted file with ILAMB 2.7.3 itself and convert it to the target unit.

    Only the first year is read (``t0``/``tf``), so the check costs little memory on long files.
    """
    os.environ.setdefault("MPLBACKEND", "Agg")
    from ILAMB.Variable import Variable

    start = float(axis.bounds[0, 0])
    var = Variable(filename=str(path), variable_name=spec.ilamb_name, t0=start, tf=start + 364.0)
    if not (var.temporal and var.spatial):
        raise ConversionError(f"ILAMB reads the output as temporal={var.temporal}, spatial={var.spatial}")
    var.convert(spec.units)
    return f"ok (ILAMB Variable, {var.time.size} steps, {var.lat.size}x{var.lon.size}, monthly={var.monthly})"


def describe_error(err: BaseException) -> str:
    """One line for the report: the error type and message, without a traceback."""
    message = " ".join(str(err).split()) or repr(err)
    return f"{type(err).__name__}: {message}"


def convert_to_stage(
    source: str | os.PathLike,
    stage_dir: str | os.PathLike,
    spec: VariableSpec,
    model: str,
    simulation: str,
    **options,
) -> dict:
    """Convert into ``stage_dir/<ilamb name>.nc`` and always write ``stage_dir/status.json``.

    A bad input (unreadable, no time axis, unknown unit, ...) is recorded as ``failed`` with its
    error, and this function returns normally: the file's own ``trendy_publish`` job then fails.
    Memory errors and interrupts propagate, so the job fails and can be retried with more memory.
    """
    stage_dir = Path(stage_dir)
    stage_dir.mkdir(parents=True, exist_ok=True)
    # A requeued or killed attempt may have left its temporary files here.
    for stale in [*stage_dir.glob(".tmp-*"), *stage_dir.glob(".inflate-*")]:
        stale.unlink(missing_ok=True)
    output = stage_dir / f"{spec.ilamb_name}.nc"
    status = {
        "model": model,
        "simulation": simulation,
        "variable": spec.trendy_name,
        "ilamb_variable": spec.ilamb_name,
        "source": str(source),
        "units_to": spec.units,
        "converter_version": CONVERTER_VERSION,
    }
    began = time.time()
    try:
        info = convert_file(source, output, spec, model, simulation, **options)
        status.update(info, status="ok", error="")
        log.info("converted %s -> %s (%s)", source, output, info.get("unit_conversion"))
    except MemoryError:
        raise
    except Exception as err:
        status.update(status="failed", error=f"{source}: {describe_error(err)}")
        log.error("FAILED %s: %s", source, describe_error(err))
        log.debug("%s", traceback.format_exc())
    status["seconds"] = round(time.time() - began, 3)
    write_json(stage_dir / "status.json", status)
    return status


def spec_from_config(trendy_name: str, entry: dict) -> VariableSpec:
    """A :class:`VariableSpec` from one entry of the config's ``variables`` mapping."""
    return VariableSpec(
        trendy_name=trendy_name,
        ilamb_name=entry["ilamb_name"],
        units=entry["units"],
        standard_name=entry.get("standard_name", ""),
        long_name=entry.get("long_name", ""),
        extra_dims=entry.get("extra_dims", "error"),
        source_names=list(entry.get("source_names", [])),
        static=bool(entry.get("static", False)),
    )


if "snakemake" in globals():
    setup_logging(snakemake.log[0])
    convert_to_stage(
        snakemake.input.source,
        snakemake.output.stage,
        spec_from_config(snakemake.wildcards.variable, snakemake.params.variable),
        snakemake.wildcards.model,
        snakemake.wildcards.simulation,
        unit_aliases=snakemake.params.unit_aliases,
        slab_mb=snakemake.params.slab_mb,
        compression_level=snakemake.params.compression_level,
        ilamb_check=snakemake.params.ilamb_check,
        missing_calendar=snakemake.params.missing_calendar,
    )
