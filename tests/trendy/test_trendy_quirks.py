"""Each TRENDY v13 quirk, converted, then read back by ILAMB 2.7.3 and checked against the truth.

The synthetic files carry a known field in the target unit (``expected_field``) written in the
source's unit, time encoding and grid orientation; ILAMB's reading of the converted file must give
back that field, month by month and cell by cell.
"""

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
import yaml

os.environ.setdefault("MPLBACKEND", "Agg")

from conftest import REPO  # noqa: E402
from trendy.convert import convert_to_stage, spec_from_config  # noqa: E402
from trendy.synthetic import bad_cases, expected_field, quirk_cases, steps_of, write_case  # noqa: E402

CONFIG = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["trendy"]
CASES = {case.name: case for case in quirk_cases()}
NOLEAP_MONTH_START = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334]


def spec_for(case):
    name = case.variable if case.variable in CONFIG["variables"] else case.ilamb_name
    return spec_from_config(name, CONFIG["variables"][name])


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """Every quirk and bad case converted into MODELS/<model>_<Sx>/; returns (models dir, statuses)."""
    tmp = tmp_path_factory.mktemp("trendy_quirks")
    root, models = tmp / "TRENDY", tmp / "MODELS"
    statuses = {}
    everything = [(case, write_case) for case in CASES.values()] + list(bad_cases().values())
    for case, writer in everything:
        source = writer(case, root)
        stage = tmp / "stage" / case.name
        statuses[case.name] = convert_to_stage(
            source, stage, spec_for(case), case.model, case.simulation, unit_aliases=CONFIG["unit_aliases"]
        )
        if statuses[case.name]["status"] == "ok":
            target = models / f"{case.model}_{case.simulation}" / f"{case.ilamb_name}.nc"
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(stage / f"{case.ilamb_name}.nc", target)
    return models, statuses


def output_of(models: Path, case) -> Path:
    return models / f"{case.model}_{case.simulation}" / f"{case.ilamb_name}.nc"


@pytest.mark.parametrize("name", sorted(CASES))
def test_ilamb_reads_the_expected_values(converted, name):
    from ILAMB.Variable import Variable

    models, statuses = converted
    case = CASES[name]
    assert statuses[name]["status"] == "ok", statuses[name]["error"]
    var = Variable(filename=str(output_of(models, case)), variable_name=case.ilamb_name)
    var.convert(case.target_units)
    assert var.temporal and var.spatial
    assert var.monthly == (case.step == "monthly")
    years, months = steps_of(case)
    assert var.time.size == years.size
    # First bound by hand: noleap days from 1850-01-01 to the first month of the source.
    assert var.time_bnds[0, 0] == (case.start_year - 1850) * 365 + NOLEAP_MONTH_START[months[0] - 1]
    assert np.allclose(var.time_bnds[1:, 0], var.time_bnds[:-1, 1])
    assert np.all(np.diff(var.lat) > 0) and np.all(np.diff(var.lon) > 0)
    assert var.lon.min() >= -180 and var.lon.max() <= 180
    truth = expected_field(case.target_units, years, months, var.lat, var.lon)
    assert np.array_equal(np.ma.getmaskarray(var.data), truth.mask), "land/ocean mask moved"
    np.testing.assert_allclose(var.data.compressed(), truth.compressed(), rtol=2e-6)


@pytest.mark.parametrize("name", sorted(CASES))
def test_cf_checker_has_no_high_priority_failure(converted, name, tmp_path):
    from compliance_checker.runner import CheckSuite, ComplianceChecker

    models, _ = converted
    CheckSuite().load_all_available_checkers()
    report_path = tmp_path / "cf.json"
    ComplianceChecker.run_checker(
        str(output_of(models, CASES[name])),
        ["cf:1.8"],
        verbose=0,
        criteria="normal",
        output_filename=str(report_path),
        output_format="json",
    )
    report = json.loads(report_path.read_text())["cf:1.8"]
    high = [msg for item in report["high_priorities"] for msg in item["msgs"]]
    assert high == []


def test_model_result_extracts_every_variable(converted):
    from ILAMB.ModelResult import ModelResult

    models, _ = converted
    by_dir = {}
    for case in CASES.values():
        by_dir.setdefault(f"{case.model}_{case.simulation}", set()).add(case.ilamb_name)
    for directory, variables in sorted(by_dir.items()):
        model = ModelResult(str(models / directory), modelname=directory)
        for variable in sorted(variables):
            extracted = model.extractTimeSeries(variable)
            assert extracted.temporal and extracted.spatial, (directory, variable)


def test_provenance_attributes(converted):
    import netCDF4

    models, statuses = converted
    case = CASES["cable_mrso_soil_layers_gz"]
    with netCDF4.Dataset(output_of(models, case)) as ds:
        source = Path(ds.source_file)
        assert source.name == case.file_name
        assert ds.source_sha256 == hashlib.sha256(source.read_bytes()).hexdigest()
        assert ds.converter_version and ds.Conventions == "CF-1.8"
        assert ds["time"].calendar == "noleap" and ds["time"].units.startswith("days since 1850-01-01")
        assert ds[case.ilamb_name].filters()["zlib"]
        assert set(ds.variables) >= {"time_bounds", "lat_bnds", "lon_bnds"}


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("truncated", "cannot be opened as NetCDF"),
        ("no_time_axis", "has no time axis"),
        ("unknown_unit", "'m^2gridcell' is not understood"),
    ],
)
def test_bad_inputs_fail_with_the_file_named(converted, name, reason):
    models, statuses = converted
    case = bad_cases()[name][0]
    status = statuses[name]
    assert status["status"] == "failed"
    assert case.file_name in status["error"] and reason in status["error"]
    assert not output_of(models, case).exists()
    assert not list((Path(status["source"]).parents[3] / "stage" / name).glob("*.nc"))


def test_good_files_convert_beside_bad_ones(converted):
    _, statuses = converted
    assert {name for name, s in statuses.items() if s["status"] == "ok"} == set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_output_grid_is_normalised_in_the_file(converted, name):
    """The file itself (not only ILAMB's reading of it) has (time, lat, lon), lat up, lon -180..180."""
    import netCDF4

    models, _ = converted
    case = CASES[name]
    with netCDF4.Dataset(output_of(models, case)) as ds:
        var = ds[case.ilamb_name]
        assert var.dimensions == ("time", "lat", "lon")
        assert var._FillValue == np.float32(1e20)
        lat, lon = ds["lat"][:], ds["lon"][:]
        assert np.all(np.diff(lat) > 0) and np.all(np.diff(lon) > 0)
        assert -180 <= lon.min() and lon.max() <= 180
        for name_, values in (("lat", lat), ("lon", lon)):
            bounds = ds[f"{name_}_bnds"][:]
            assert np.all((bounds[:, 0] <= values) & (values <= bounds[:, 1]))
        assert np.abs(ds["lat_bnds"][:]).max() <= 90
