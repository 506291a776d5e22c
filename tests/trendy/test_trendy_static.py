"""Land fraction and cell area: converted on the data's grid handling, and read by ILAMB aligned with the data."""

import os
import shutil

import netCDF4
import numpy as np
import pytest
import yaml

os.environ.setdefault("MPLBACKEND", "Agg")

from conftest import REPO  # noqa: E402
from trendy.convert import convert_to_stage, spec_from_config  # noqa: E402
from trendy.synthetic import cell_area_m2, land_fraction, quirk_cases, with_size, write_case, write_static  # noqa: E402

CONFIG = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["trendy"]


@pytest.fixture(scope="module")
def classic_run(tmp_path_factory):
    """CLASSIC as shipped: gpp on -180..170, land fraction in percent on 0..350 with latitude decreasing."""
    tmp = tmp_path_factory.mktemp("static")
    root, models = tmp / "TRENDY", tmp / "MODELS" / "CLASSIC_S3"
    models.mkdir(parents=True)
    gpp = write_case(
        with_size(next(c for c in quirk_cases() if c.name == "classic_latex_units"), 10.0, 1), root
    )
    frac = write_static(
        root,
        "CLASSIC",
        "CLASSIC",
        "S3",
        "land_fraction",
        10.0,
        percent=True,
        lon_start=0.0,
        lat_decreasing=True,
    )
    area = write_static(
        root, "CLASSIC", "CLASSIC", "S3", "areacella", 10.0, lon_start=0.0, lat_decreasing=True
    )
    statuses = {}
    for name, source in [("gpp", gpp), ("land_fraction", frac), ("areacella", area)]:
        spec = spec_from_config(name, CONFIG["variables"][name])
        stage = tmp / "stage" / name
        statuses[name] = convert_to_stage(
            source, stage, spec, "CLASSIC", "S3", unit_aliases=CONFIG["unit_aliases"]
        )
        assert statuses[name]["status"] == "ok", statuses[name]["error"]
        shutil.copy(stage / f"{spec.ilamb_name}.nc", models / f"{spec.ilamb_name}.nc")
    return models, statuses


def test_land_fraction_and_area_follow_the_data_grid(classic_run):
    models, statuses = classic_run
    with netCDF4.Dataset(models / "gpp.nc") as ds:
        lat, lon = ds["lat"][:], ds["lon"][:]
    with netCDF4.Dataset(models / "sftlf.nc") as ds:
        assert ds["sftlf"].dimensions == ("lat", "lon") and ds["sftlf"].units == "1"
        np.testing.assert_array_equal(ds["lat"][:], lat)
        np.testing.assert_array_equal(ds["lon"][:], lon)
        np.testing.assert_allclose(
            ds["sftlf"][:].filled(np.nan), land_fraction(lat, lon), rtol=1e-6, atol=1e-7
        )
    with netCDF4.Dataset(models / "areacella.nc") as ds:
        assert ds["areacella"].units == "m2"
        np.testing.assert_allclose(ds["areacella"][:], cell_area_m2(lat, lon, 10.0), rtol=1e-6)
    assert statuses["land_fraction"]["time_step"] == "static"


def test_ilamb_multiplies_the_aligned_land_fraction(classic_run):
    """ILAMB multiplies land fraction by cell area without aligning coordinates: they must already agree."""
    from ILAMB.ModelResult import ModelResult

    models, _ = classic_run
    model = ModelResult(str(models), modelname="CLASSIC_S3")
    with netCDF4.Dataset(models / "gpp.nc") as ds:
        lat, lon = ds["lat"][:], ds["lon"][:]
    np.testing.assert_allclose(
        model.land_fraction.filled(np.nan), land_fraction(lat, lon), rtol=1e-6, atol=1e-7
    )
    expected_land = (cell_area_m2(lat, lon, 10.0) * land_fraction(lat, lon)).sum()
    assert model.land_area == pytest.approx(expected_land, rel=1e-5)


def test_land_fraction_in_percent_under_a_dimensionless_unit_is_read_as_percent(tmp_path):
    source = write_static(tmp_path, "M", "M", "S3", "sftlf", 10.0)
    with netCDF4.Dataset(source, "a") as ds:  # percent values, but the unit says fraction
        ds["sftlf"][:] = ds["sftlf"][:] * 100.0
    status = convert_to_stage(
        source, tmp_path / "stage", spec_from_config("sftlf", CONFIG["variables"]["sftlf"]), "M", "S3"
    )
    assert status["status"] == "ok" and "read as percent" in status["warnings"]
    with netCDF4.Dataset(tmp_path / "stage" / "sftlf.nc") as ds:
        assert float(ds["sftlf"][:].max()) <= 1.0
