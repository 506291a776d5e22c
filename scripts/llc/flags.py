"""Warnings an LLC estimate carries about itself, from the numbers in its analysis.json.

Computed by the aggregate (and logged by the sampler job with the defaults), so that changing
a threshold in ``llc.flags`` re-flags the table without rerunning a sampler. Each flag is a
short name and a reason a reader can act on; an estimate with flags is not trustworthy as it is.

* ``chain_disagreement``: a chain's LLC lies far outside the other chains' spread (one chain
  found another basin, or spiked); R-hat pooled over four chains can miss it (issue example:
  per-chain 2.87, 2.91, 2.70, 4.82 with R-hat 1.037).
* ``loss_excursion``: a draw of nβ(L - L0) far above the bulk of the trace (a spike, the step
  size is too large for some region), or a chain whose mean loss is below L0 (w* is not a
  local minimum: the sampler is still training).
* ``divergences``: HMC trajectories whose energy error blew up.
* ``low_acceptance``: HMC acceptance or SGLD's MALA acceptance below the threshold (the
  discretisation error of the step is large).
* ``low_ess`` / ``high_r_hat``: too few effective draws / chains that have not mixed.
* ``n_below_params``: fewer data points than parameters; the estimate is then dominated by
  the localization, not the data.
"""

from __future__ import annotations

import math
import statistics

DEFAULT_THRESHOLDS = {
    "max_r_hat": 1.05,
    "min_ess": 100,
    "chain_spread": 4.0,
    "chain_min_relative": 0.1,
    "excursion_iqr": 20.0,
    "max_divergences": 0,
    "min_acceptance": 0.5,
}


def chain_outliers(per_chain: list[float], chain_sem: float, spread: float, min_relative: float) -> list[str]:
    """Chains whose LLC is more than ``spread`` times the others' scale from their median.

    The scale is the larger of the other chains' standard deviation and one chain's Monte
    Carlo error (``chain_sem``), so well-mixed chains that differ by noise are not flagged;
    a difference under ``min_relative`` of the median is never flagged.
    """
    found = []
    if len(per_chain) < 3:
        return found
    for index, value in enumerate(per_chain):
        others = per_chain[:index] + per_chain[index + 1 :]
        centre = statistics.median(others)
        scale = max(statistics.stdev(others), chain_sem if math.isfinite(chain_sem) else 0.0)
        deviation = abs(value - centre)
        if deviation > spread * scale and deviation > min_relative * abs(centre):
            found.append(f"chain {index}: {value:.3g} vs {centre:.3g} for the others")
    return found


def run_flags(analysis: dict, thresholds: dict | None = None) -> dict[str, str]:
    """``{flag: reason}`` for one finished run (an analysis.json record)."""
    limits = {**DEFAULT_THRESHOLDS, **(thresholds or {})}
    flags = {}
    chains = len(analysis["llc_per_chain"])
    # One chain's Monte Carlo error: the trace's spread over the chain's share of the ESS.
    ess = analysis.get("ess")
    chain_sem = (
        analysis["llc_trace_std"] / math.sqrt(ess / chains)
        if ess and math.isfinite(ess) and ess > 0
        else math.nan
    )
    outliers = chain_outliers(
        analysis["llc_per_chain"], chain_sem, limits["chain_spread"], limits["chain_min_relative"]
    )
    if outliers:
        flags["chain_disagreement"] = "; ".join(outliers)
    excursions = []
    q25, q75 = analysis["llc_q25"], analysis["llc_q75"]
    ceiling = q75 + limits["excursion_iqr"] * max(q75 - q25, 1e-12)
    for index, peak in enumerate(analysis["llc_max_per_chain"]):
        if peak > ceiling:
            excursions.append(f"chain {index} reached nβ(L-L0) = {peak:.3g} (bulk {q25:.3g}..{q75:.3g})")
    for index, value in enumerate(analysis["llc_per_chain"]):
        if value < 0:
            excursions.append(f"chain {index} averages below L0 ({value:.3g}): w* is not a local minimum")
    if excursions:
        flags["loss_excursion"] = "; ".join(excursions)
    divergences = analysis.get("divergences")
    if divergences is not None and divergences > limits["max_divergences"]:
        flags["divergences"] = f"{divergences} divergent HMC transitions after warm-up"
    for key, label in [("acceptance_rate", "HMC acceptance"), ("mala_acceptance", "SGLD MALA acceptance")]:
        value = analysis.get(key)
        if value is not None and math.isfinite(value) and value < limits["min_acceptance"]:
            flags["low_acceptance"] = f"{label} {value:.2f} < {limits['min_acceptance']}"
    if not (ess is not None and ess >= limits["min_ess"]):
        flags["low_ess"] = f"ESS {ess:.0f} < {limits['min_ess']}" if ess is not None else "ESS unknown"
    r_hat = analysis.get("r_hat")
    if r_hat is not None and math.isfinite(r_hat) and r_hat > limits["max_r_hat"]:
        flags["high_r_hat"] = f"R-hat {r_hat:.3f} > {limits['max_r_hat']}"
    if analysis["n"] < analysis["num_params"]:
        flags["n_below_params"] = f"n = {analysis['n']} < {analysis['num_params']} parameters"
    return flags
