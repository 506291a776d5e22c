"""Known learning coefficients (pure Python, no JAX: also used at parse time).

* regular models (linear regression): lambda = d/2;
* reduced-rank regression y = B A x (Aoyagi & Watanabe 2005);
* deep linear networks (Aoyagi 2024), transcribed from the Furman/Lau code
  ``validating_lambdahat/dln.py::true_dln_learning_coefficient`` and checked against the
  RRR formula for every one-hidden-layer shape in the tests.
"""

from __future__ import annotations

import math


def regular_lambda(num_params: int) -> float:
    """Learning coefficient of a regular (identifiable, non-degenerate) model: d/2."""
    return num_params / 2


def rrr_lambda(m: int, h: int, n: int, r: int) -> float:
    """Aoyagi & Watanabe's learning coefficient of reduced-rank regression.

    ``m`` inputs, ``h`` inner width, ``n`` outputs, ``r`` the rank of the true map (r <= h).
    """
    return rrr_lambda_multiplicity(m, h, n, r)[0]


def rrr_lambda_multiplicity(m: int, h: int, n: int, r: int) -> tuple[float, int]:
    """(lambda, multiplicity) of reduced-rank regression; m = 2 only in case 1 with an odd sum."""
    if not 0 <= r <= h:
        raise ValueError(f"true rank {r} must lie in [0, inner width {h}]")
    if n + r <= m + h and m + r <= n + h and h + r <= m + n:
        value = (2 * (h + r) * (m + n) - (m - n) ** 2 - (h + r) ** 2) / 8
        odd = (m + h + n + r) % 2
        return value + (1 / 8 if odd else 0), 2 if odd else 1
    if m + h < n + r:
        return (h * m - h * r + n * r) / 2, 1
    if n + h < m + r:
        return (h * n - h * r + m * r) / 2, 1
    return m * n / 2, 1


def dln_lambda(widths: list[int], r: int) -> float:
    """Aoyagi's learning coefficient of a deep linear network.

    ``widths`` = [H_1 (input), ..., H_{L+1} (output)], ``r`` the rank of the true product.
    """
    return dln_lambda_multiplicity(widths, r)[0]


def dln_lambda_multiplicity(widths: list[int], r: int) -> tuple[float, int]:
    """(lambda, multiplicity) of a deep linear network (Aoyagi 2024: m = a(l - a) + 1)."""
    if r < 0 or r > min(widths):
        raise ValueError(f"true rank {r} must lie in [0, narrowest width {min(widths)}]")
    deficits = sorted(w - r for w in widths)
    for size in range(2, len(deficits) + 1):
        chosen, rest = deficits[:size], deficits[size:]
        ell = size - 1
        total = sum(chosen)
        if rest and not max(chosen) < min(rest):
            continue
        if total < ell * max(chosen):
            continue
        if rest and not total < ell * min(rest):
            continue
        big_m = math.ceil(total / ell)
        a = total - (big_m - 1) * ell
        pairs = sum(chosen[i] * chosen[j] for i in range(size) for j in range(i + 1, size))
        lam = (
            (-(r**2) + r * (widths[0] + widths[-1])) / 2
            + a * (ell - a) / (4 * ell)
            - ell * (ell - 1) / 4 * (total / ell) ** 2
            + pairs / 2
        )
        return lam, a * (ell - a) + 1
    raise ValueError(f"no admissible index set for widths {widths} with rank {r}")


def num_params(family: str, widths: list[int]) -> int:
    """Number of trainable parameters: weights only for the linear families, plus biases for the MLP."""
    weights = sum(a * b for a, b in zip(widths[:-1], widths[1:], strict=True))
    return weights + (sum(widths[1:]) if family == "mlp" else 0)


def theoretical_lambda(family: str, widths: list[int], true_rank: int) -> float | None:
    """The learning coefficient theory gives for a target, or None where none is known (the MLP)."""
    return theoretical_lambda_multiplicity(family, widths, true_rank)[0]


def theoretical_lambda_multiplicity(family: str, widths, true_rank: int) -> tuple[float | None, int | None]:
    """(lambda, multiplicity m) theory gives for a target, (None, None) where none is known.

    The multiplicity is the power of log n in the free energy's second term; where m > 1 the
    finite-n estimate converges more slowly, so it is shown beside the truth.
    """
    if family == "linear":
        return regular_lambda(num_params(family, widths)), 1
    if family == "rrr":
        return rrr_lambda_multiplicity(widths[0], widths[1], widths[2], true_rank)
    if family == "dln":
        return dln_lambda_multiplicity(widths, true_rank)
    return None, None
