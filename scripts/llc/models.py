"""Models as JAX functions ``apply(params, x)`` of a parameter pytree, and the MSE loss.

Built-in families (linear, rrr, dln, mlp): weight matrices ``w<l>`` of shape
(width_{l+1}, width_l), plus a bias ``b<l>`` per layer for the MLP. Family ``custom``: the
user's function (``llc.custom``). Samplers work on the flat vector (``jax.flatten_util``),
so HMC's mass matrix and SGLD's noise see one array.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

ACTIVATIONS = {"tanh": jnp.tanh, "relu": jax.nn.relu}


def init_params(cfg: dict, key, scale: float = 1.0) -> dict:
    """Random parameters for a built-in architecture, each layer N(0, scale^2 / fan_in)."""
    widths = cfg["widths"]
    keys = jax.random.split(key, len(widths) - 1)
    params = {}
    for layer, (k, fan_in, fan_out) in enumerate(zip(keys, widths[:-1], widths[1:], strict=True)):
        params[f"w{layer}"] = scale * jax.random.normal(k, (fan_out, fan_in)) / np.sqrt(fan_in)
        if cfg["family"] == "mlp":
            params[f"b{layer}"] = jnp.zeros(fan_out)
    return params


def forward(cfg: dict, params: dict, x):
    """Network output of a built-in family for inputs ``x`` of shape (n, widths[0])."""
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


def model_functions(cfg: dict, key, scale: float = 1.0):
    """(initial parameters, apply(params, x)) of a target's model, built-in or custom."""
    if cfg["family"] == "custom":
        from llc.custom import custom_model

        return custom_model(cfg, key)
    return init_params(cfg, key, scale), functools.partial(forward, cfg)


def mse(apply, params, x, y):
    """Mean squared error over all n * output_dim entries (the L_n of the estimator)."""
    return jnp.mean((apply(params, x) - y) ** 2)


def flat_loss(apply, params_template):
    """Return (unravel, loss(w_flat, x, y)) for the flat parameterisation of ``params_template``."""
    _, unravel = ravel_pytree(params_template)

    def loss(w, x, y):
        return mse(apply, unravel(w), x, y)

    return unravel, loss


def leaf_names(params) -> list[str]:
    """One name per leaf, from its path in the pytree (``w0``, ``layers/0/kernel``)."""
    paths = jax.tree_util.tree_flatten_with_path(params)[0]
    return [jax.tree_util.keystr(path, simple=True, separator="/") or "params" for path, _ in paths]


def params_to_npz(params) -> dict:
    """Plain float64 NumPy arrays for ``np.savez``, named by their path in the pytree."""
    leaves = jax.tree_util.tree_leaves(params)
    return {name: np.asarray(v, dtype=np.float64) for name, v in zip(leaf_names(params), leaves, strict=True)}


def params_from_npz(npz, template, dtype):
    """The pytree of ``template``'s shape with the arrays of ``npz`` (named as :func:`params_to_npz`)."""
    names = leaf_names(template)
    missing = [name for name in names if name not in npz.files]
    if missing:
        raise KeyError(f"parameters file lacks {', '.join(missing)} (has {', '.join(npz.files)})")
    leaves = [jnp.asarray(npz[name], dtype=dtype) for name in names]
    for name, leaf, ref in zip(names, leaves, jax.tree_util.tree_leaves(template), strict=True):
        if leaf.shape != jnp.shape(ref):
            raise ValueError(f"parameter {name} has shape {leaf.shape}, the model expects {jnp.shape(ref)}")
    return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(template), leaves)
