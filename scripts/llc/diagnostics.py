"""Rank-normalized split R-hat and bulk/tail ESS (Vehtari, Gelman, Simpson, Carpenter & Bürkner
2021), in NumPy, for arrays of shape (chains, draws).

Same definitions as ArviZ's defaults and ``blackjax.diagnostics.rhat/ess_bulk/ess_tail``
(tests compare them); BlackJAX's versions dispatch op by op on the CPU and took ~20 s per
call in a fresh process, longer than most sampler runs here.
"""

from __future__ import annotations

import numpy as np
from scipy import stats


def split_chains(draws: np.ndarray) -> np.ndarray:
    """Each chain cut into its two halves (an odd middle draw dropped)."""
    half = draws.shape[1] // 2
    return np.concatenate([draws[:, :half], draws[:, draws.shape[1] - half :]], axis=0)


def rank_normalize(draws: np.ndarray) -> np.ndarray:
    """Normal scores of the pooled ranks (Blom's offset, average ranks for ties)."""
    ranks = stats.rankdata(draws, method="average").reshape(draws.shape)
    return stats.norm.ppf((ranks - 3 / 8) / (draws.size + 1 / 4))


def basic_rhat(draws: np.ndarray) -> float:
    """Gelman-Rubin potential scale reduction of (chains, draws)."""
    n = draws.shape[1]
    within = draws.var(axis=1, ddof=1).mean()
    between = n * draws.mean(axis=1).var(ddof=1)
    return float(np.sqrt(((n - 1) / n * within + between / n) / within))


def rhat(draws: np.ndarray) -> float:
    """Rank-normalized split R-hat: the larger of the bulk and the folded (scale) versions."""
    draws = np.asarray(draws, dtype=np.float64)
    bulk = basic_rhat(rank_normalize(split_chains(draws)))
    folded = basic_rhat(rank_normalize(split_chains(np.abs(draws - np.median(draws)))))
    return max(bulk, folded)


def _autocovariance(draws: np.ndarray) -> np.ndarray:
    n = draws.shape[1]
    centred = draws - draws.mean(axis=1, keepdims=True)
    size = 1 << (2 * n - 1).bit_length()
    spectrum = np.fft.rfft(centred, n=size, axis=1)
    return np.fft.irfft(spectrum * np.conj(spectrum), n=size, axis=1)[:, :n] / n


def ess(draws: np.ndarray) -> float:
    """Effective sample size of (chains, draws) with Geyer's initial monotone sequence."""
    chains, n = draws.shape
    if n < 4 or not np.all(np.isfinite(draws)):
        return float("nan")
    acov = _autocovariance(draws)
    mean_var = (acov[:, 0] * n / (n - 1)).mean()
    var_plus = mean_var * (n - 1) / n + (draws.mean(axis=1).var(ddof=1) if chains > 1 else 0.0)
    if var_plus <= 0:
        return float("nan")
    rho = np.zeros(n)
    rho[0] = 1.0
    rho_even, rho_odd = 1.0, 1 - (mean_var - acov[:, 1].mean()) / var_plus
    rho[1] = rho_odd
    t = 1
    while t < n - 3 and rho_even + rho_odd > 0:
        rho_even = 1 - (mean_var - acov[:, t + 1].mean()) / var_plus
        rho_odd = 1 - (mean_var - acov[:, t + 2].mean()) / var_plus
        if rho_even + rho_odd >= 0:
            rho[t + 1], rho[t + 2] = rho_even, rho_odd
        t += 2
    max_t = t - 2
    if rho_odd > 0:
        rho[max_t + 1] = rho_odd
    t = 1
    while t <= max_t - 2:
        if rho[t + 1] + rho[t + 2] > rho[t - 1] + rho[t]:
            rho[t + 1] = rho[t + 2] = (rho[t - 1] + rho[t]) / 2
        t += 2
    total = chains * n
    tau = -1 + 2 * rho[: max_t + 1].sum() + rho[max_t + 1]
    return float(total / max(tau, 1 / np.log10(total)))


def ess_bulk(draws: np.ndarray) -> float:
    """Bulk ESS: ESS of the rank-normalized split chains."""
    return ess(rank_normalize(split_chains(np.asarray(draws, dtype=np.float64))))


def ess_tail(draws: np.ndarray) -> float:
    """Tail ESS: the smaller ESS of the 5% and 95% quantile indicators."""
    draws = np.asarray(draws, dtype=np.float64)
    values = []
    for q in (0.05, 0.95):
        indicator = (draws <= np.quantile(draws, q)).astype(np.float64)
        values.append(ess(split_chains(indicator)))
    return min(values)
