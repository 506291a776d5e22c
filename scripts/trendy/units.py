"""Clean TRENDY unit strings and convert data with cf_units (the library ILAMB itself uses).

The original converter relabelled ``gC m-2`` as ``kg m-2`` without touching the data; here a unit
change always goes through :func:`unit_converter`, so the values change with it.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
from cf_units import Unit

# Strings that modellers use for "dimensionless".
DIMENSIONLESS = {
    "",
    "1",
    "-",
    "--",
    "[]",
    "''",
    "fraction",
    "frac",
    "unitless",
    "none",
    "n/a",
    "no_unit",
    "m2 m-2",
    "m2/m2",
}
# udunits reads "degrees celsius" as angle * celsius (0 degC -> 0 K): map the spellings explicitly.
CELSIUS = re.compile(r"^(deg(ree)?s?[ _]?(c|celsius|centigrade)|celsius|°c)$", re.IGNORECASE)
KELVIN = re.compile(r"^(kelvin|deg(ree)?s?[ _]?k)$", re.IGNORECASE)
# "per month" in any spelling: udunits' month is a fixed 30.44 days, so these are divided by each
# step's own month length instead (February 28 or 29 days, July 31).
PER_MONTH = re.compile(
    r"(?:\s*/\s*|\s+per\s+)(?:months?|mon)\b|\s*\b(?:months?|mon)\s*-\s*1\b", re.IGNORECASE
)
# Water depth to mass per area: 1 mm of liquid water is 1 kg m-2.
WATER_DENSITY = "1000 kg m-3"


class UnitError(ValueError):
    """A unit string that cannot be understood, or cannot be converted to the target unit."""


def clean_unit(raw: str | None) -> str:
    """Return a string cf_units parses, from a TRENDY unit attribute (which may be missing).

    Handles LaTeX (``kg m$^{-2}$``), zero-width spaces, dots and slashes (kept: udunits reads
    them), ``^`` exponents, ``%``, the many spellings of "dimensionless", carbon/nitrogen
    qualifiers (``gC``, ``kg C``, ``KgN``), ``Kelvin`` and degrees Celsius, and trailing prose
    after a comma (``kg m-2 s-1, per unit land area``). Raises :class:`UnitError` otherwise.
    """
    if raw is None:
        return "1"
    text = str(raw).replace("\u200b", "").replace("\ufeff", "").strip()
    text = text.split(",")[0].strip()
    # LaTeX: strip math delimiters and braces, keep the exponents.
    text = text.replace("$", "").replace("{", "").replace("}", "").replace("\\", "")
    text = re.sub(r"\^\s*", "", text)
    text = re.sub(r"\s+", " ", text).strip()
    if text.lower() in DIMENSIONLESS:
        return "1"
    if CELSIUS.match(text):
        return "degC"
    if KELVIN.match(text):
        return "K"
    # Mass of carbon or nitrogen is a mass: gC, kgC, KgC, kg C, g N -> g, kg.
    text = re.sub(r"\b([kKmµu]?)[gG]\s?[CN]\b", lambda m: (m.group(1).replace("K", "k")) + "g", text)
    text = re.sub(r"\bKg\b", "kg", text)
    text = re.sub(r"\bfraction\b", "1", text)
    try:
        unit = Unit(text)
    except ValueError as err:
        raise UnitError(f"unit {raw!r} is not understood (cleaned to {text!r}): {err}") from None
    if unit.is_unknown():
        raise UnitError(f"unit {raw!r} is not understood (cleaned to {text!r})")
    return text


def split_per_month(source: str) -> str | None:
    """The amount unit of a per-month unit (``kg m-2 month-1`` -> ``kg m-2``), or None."""
    if not PER_MONTH.search(source):
        return None
    amount = PER_MONTH.sub("", source).strip() or "1"
    try:
        Unit(amount)
    except ValueError as err:
        raise UnitError(f"unit {source!r}: {amount!r} per month is not understood: {err}") from None
    return amount


def unit_converter(
    source: str, target: str, step: str = "monthly", calendar: str = ""
) -> tuple[Callable, str]:
    """Return ``(convert, how)``: ``convert(values, step_seconds)`` maps a slab from ``source`` to ``target``.

    ``source`` is a cleaned unit. Besides what cf_units converts directly (g to kg, yr-1 to s-1,
    degC to K, % to 1), two physical bridges are allowed and named in ``how``: a water depth
    (``mm``, ``mm s-1``) becomes a mass per area through the density of liquid water
    (1 mm = 1 kg m-2), and an amount accumulated over each time step (``mm`` or ``kg m-2`` where
    a flux is wanted) is divided by that step's length in seconds (``step_seconds``: one duration
    per time step of the slab, under the source calendar).

    A per-month unit (``kg m-2 month-1``) is an amount per calendar month: it is divided by each
    step's own month length, never by udunits' 30.44-day month; on annual steps it is refused.
    """
    per_month = split_per_month(source)
    if per_month is not None:
        if step != "monthly":
            raise UnitError(f"unit {source!r} is per month, but the time steps are {step}")
        convert, how = unit_converter(per_month, target, step, calendar)
        if "per time step" not in how:
            raise UnitError(f"unit {source!r} (an amount per month) cannot be converted to {target!r}")
        return (
            convert,
            f"amount per calendar month divided by that month's length ({calendar or 'source calendar'}), cf_units",
        )
    try:
        src, dst = Unit(source), Unit(target)
    except ValueError as err:
        raise UnitError(f"unit {source!r} or {target!r} is not understood: {err}") from None
    bridges = [
        (src, False, "cf_units"),
        (src * Unit(WATER_DENSITY), False, "water depth to mass (1000 kg m-3), cf_units"),
        (src / Unit("s"), True, "amount per time step divided by the step length, cf_units"),
        (src * Unit(WATER_DENSITY) / Unit("s"), True, "water depth per time step to mass flux, cf_units"),
    ]
    for unit, per_step, how in bridges:
        if not unit.is_convertible(dst):
            continue

        def convert(values, step_seconds=None, _unit=unit, _per_step=per_step):
            values = np.asarray(values, dtype=np.float64)
            if _per_step:
                shape = (-1,) + (1,) * (values.ndim - 1)
                values = values / np.asarray(step_seconds, dtype=np.float64).reshape(shape)
            return _unit.convert(values, dst)

        return convert, ("unchanged" if src == dst else how)
    raise UnitError(f"unit {source!r} cannot be converted to {target!r}")
