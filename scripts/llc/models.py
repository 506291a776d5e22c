"""Model families as JAX functions of a flat parameter vector, and the MSE loss.

Parameters are a list of weight matrices ``W_l`` of shape (width_{l+1}, width_l), plus a
bias per layer for the MLP. Samplers work on the flat vector (``jax.flatten_util``), so
HMC's mass matrix and SGLD's noise see one array.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

ACTIVATIONS = {"tanh": jnp.tanh, "relu": jax.nn.relu}


def init_params(cfg: dict, key, scale: float = 1.0) -> dict:
    """Random parameters for the target's architecture, each layer N(0, scale^2 / fan_in)."""
    widths = cfg["widths"]
    keys = jax.random.split(key, len(widths) - 1)
    params = {}
    for layer, (k, fan_in, fan_out) in enumerate(zip(keys, widths[:-1], widths[1:], strict=True)):
        params[f"w{layer}"] = scale * jax.random.normal(k, (fan_out, fan_in)) / np.sqrt(fan_in)
        if cfg["family"] == "mlp":
            params[f"b{layer}"] = jnp.zeros(fan_out)
    return params


def forward(cfg: dict, params: dict, x):
    """Network output for inputs ``x`` of shape (n, widths[0])."""
    depth = len(cfg["widths"]) - 1
    act = ACTIVATIONS[cfg["activation"]] if cfg["family"] == "mlp" else None
    h = x
    for layer in range(depth):
        h = h @ params[f"w{layer}"].T
        if act is not None:
            h = h + params[f"b{layer}"]
            if layer < depth - 1:
                h = act(h)
    return h


def mse(cfg: dict, params: dict, x, y):
    """Mean squared error over all n * output_dim entries (the L_n of the estimator)."""
    return jnp.mean((forward(cfg, params, x) - y) ** 2)


def flat_loss(cfg: dict, params_template: dict):
    """Return (unravel, loss(w_flat, x, y)) for the flat parameterisation of ``params_template``."""
    _, unravel = ravel_pytree(params_template)

    def loss(w, x, y):
        return mse(cfg, unravel(w), x, y)

    return unravel, loss


def params_to_npz(params: dict) -> dict:
    """Plain float64 NumPy arrays for ``np.savez``."""
    return {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}


def params_from_npz(npz, dtype) -> dict:
    """Parameters from ``params.npz``, cast to the sampler's dtype."""
    return {k: jnp.asarray(npz[k], dtype=dtype) for k in npz.files}
