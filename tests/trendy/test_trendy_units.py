"""Unit strings from TRENDY v13 files: cleaning, and values that change when units change."""

import numpy as np
import pytest
from trendy.units import UnitError, clean_unit, unit_converter


@pytest.mark.parametrize(
    ("raw", "cleaned"),
    [
        ("kg m$^{-2}$ s$^{-1}$", "kg m-2 s-1"),  # CLASSIC LaTeX
        ("kg/m$^2$\u200b", "kg/m2"),  # CLASSIC zero-width space
        ("kg C m$^{-2}$", "kg m-2"),
        ("KgC/m2", "kg/m2"),  # ISAM
        ("kgN/m2", "kg/m2"),
        ("gC m-2 yr-1", "g m-2 yr-1"),
        ("kg  m-2 s-1", "kg m-2 s-1"),  # ISAM double space
        ("kg m^-2 s^-1", "kg m-2 s-1"),  # OCN
        ("kg.m-2.s-1", "kg.m-2.s-1"),
        ("Kg/m2/s", "kg/m2/s"),  # ISBA-CTRIP
        ("W m-2 ", "W m-2"),
        ("degrees celsius", "degC"),  # DLEM: udunits would read angle * celsius
        ("degC", "degC"),
        ("Kelvin", "K"),  # LPJmL
        ("fraction", "1"),
        ("-", "1"),
        ("--", "1"),
        ("[]", "1"),
        ("", "1"),
        ("unitless", "1"),
        ("m2/m2", "1"),
        (None, "1"),
        ("%", "%"),
        ("kg m-2 yr-1, per unit land area occupied by the PFT", "kg m-2 yr-1"),  # SDGVM prose
    ],
)
def test_clean_unit(raw, cleaned):
    assert clean_unit(raw) == cleaned


@pytest.mark.parametrize("raw", ["m^2gridcell", "bananas m-2", "Fraction of grid cell area occupied"])
def test_unknown_unit_names_the_unit(raw):
    with pytest.raises(UnitError, match="not understood") as err:
        clean_unit(raw)
    assert raw.split()[0] in str(err.value)


# Expected values computed by hand, not by cf_units.
@pytest.mark.parametrize(
    ("source", "target", "value", "expected"),
    [
        ("g m-2 yr-1", "kg m-2 s-1", 31556925.9747, 1e-3),  # udunits year = 365.242198781 d
        ("kg m-2 yr-1", "kg m-2 s-1", 31556925.9747, 1.0),
        ("g m-2 s-1", "kg m-2 s-1", 5.0, 5e-3),
        ("degC", "K", 15.0, 288.15),
        ("%", "1", 37.0, 0.37),
        ("mm/day", "kg m-2 s-1", 86.4, 1e-3),  # 1 mm of water = 1 kg m-2
        ("kg m-2 s-1", "kg m-2 s-1", 2.5e-8, 2.5e-8),
    ],
)
def test_values_change_with_units(source, target, value, expected):
    convert, how = unit_converter(clean_unit(source), target)
    assert convert(np.array([value]))[0] == pytest.approx(expected, rel=1e-9)


def test_amount_per_step_is_divided_by_the_step_length():
    """DLEM pr in mm per month: 31 mm in a 31-day month is 1 mm/day = 1/86400 kg m-2 s-1."""
    convert, how = unit_converter("mm", "kg m-2 s-1")
    steps = np.array([31 * 86400.0, 28 * 86400.0])
    out = convert(np.array([[31.0], [28.0]]), steps)
    assert out[:, 0] == pytest.approx([1 / 86400.0, 1 / 86400.0], rel=1e-12)
    assert "step" in how


def test_incompatible_units_fail():
    with pytest.raises(UnitError, match="cannot be converted"):
        unit_converter("K", "kg m-2 s-1")
