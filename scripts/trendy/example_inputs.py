"""Example TRENDY inputs for the demo: a few models, S0 and S3, the main quirks, on a 5 degree grid."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from trendy.synthetic import quirk_cases, with_size, write_benchmarks, write_case, write_static

EXAMPLE_CASES = [
    "cable_months_since",
    "cable_years_since_annual",
    "cable_mrso_soil_layers_gz",
    "classic_latex_units",
    "clm_yr_integer_pools",
    "clm_monthly_gC_per_year",
    "dlem_unit_attribute_celsius",
    "dlem_pr_mm_per_month",
    "ed_no_calendar_fraction_per_month",
    "elm_mixed_names_end_stamped_percent",
    "isam_month_as_ymd_lon360",
    "isam_upper_case_LAI",
    "jsbach_1701_gaussian_hours",
    "sdgvm_360day_per_year_prose",
    "visit_decimal_years_missing_value_only",
]
# Simulations written for every case besides S3: S0 and S3 must land in different ILAMB models.
EXTRA_SIMULATIONS = {"cable_months_since": ["S0"], "sdgvm_360day_per_year_prose": ["S0"]}


def example_cases():
    """The example files as synthetic cases (5 degree grid, a few years each)."""
    by_name = {case.name: case for case in quirk_cases()}
    cases = []
    for name in EXAMPLE_CASES:
        case = by_name[name]
        case = with_size(case, 7.5 if case.gaussian else 5.0, 3 if case.step == "monthly" else 10)
        cases.append(case)
        cases.extend(replace(case, simulation=sim) for sim in EXTRA_SIMULATIONS.get(name, []))
    return cases


# Static fields of two models (the others are reported without them): CABLE-POP's on the data
# grid, CLASSIC's land fraction in percent on 0..355 with latitude decreasing, as CLASSIC ships it.
STATIC_FILES = [
    ("CABLE-POP", "CABLE-POP", "S0", "land_fraction", {"percent": True}),
    ("CABLE-POP", "CABLE-POP", "S3", "land_fraction", {"percent": True}),
    ("CABLE-POP", "CABLE-POP", "S3", "areacella", {}),
    (
        "CLASSIC",
        "CLASSIC",
        "S3",
        "land_fraction",
        {"percent": True, "lon_start": 0.0, "lat_decreasing": True},
    ),
]
# Reference variables of the example ILAMB benchmark, over the examples' years.
BENCHMARK_VARIABLES = ["gpp", "tas", "lai"]


def make(outdir: Path) -> None:
    """Write the examples under ``outdir/TRENDYv13`` and the ILAMB benchmark under ``outdir/ilamb``.

    Idempotent: existing files are kept.
    """
    root = Path(outdir) / "TRENDYv13"
    for case in example_cases():
        if not case.path(root).exists():
            write_case(case, root)
    for model, prefix, simulation, name, options in STATIC_FILES:
        if not (root / model / simulation / f"{prefix}_{simulation}_{name}.nc").exists():
            write_static(root, model, prefix, simulation, name, resolution=5.0, **options)
    if not (Path(outdir) / "ilamb" / "benchmarks.cfg").exists():
        write_benchmarks(Path(outdir) / "ilamb", BENCHMARK_VARIABLES, first_year=1700, n_years=13)
