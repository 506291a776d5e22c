"""Stage A: draw data from a teacher plus noise, train a student to w* with full-batch Adam
(or solve least squares exactly for linear regression), and write data, parameters and meta.

Run by rule ``llc_build_target``; x64 is switched on at the top of the process, before any
array exists, when the target asks for it (JAX's x64 flag is process-wide).
"""

import platform
import time

if "snakemake" in globals():
    from llc.jax_env import configure_jax

    configure_jax(snakemake.resources.get("jax_platforms", "cpu"), snakemake.params.target["config"]["x64"])

import jax
import jax.numpy as jnp
import numpy as np
import optax
from common import atomic_path, setup_logging, write_json

from llc.models import init_params, mse, params_to_npz
from llc.truth import num_params, theoretical_lambda


class TargetError(RuntimeError):
    """A target cannot be built (training diverged); the message names the target."""


def teacher_outputs(cfg: dict, x, key):
    """Noise-free outputs of the teacher for inputs ``x``, and a description of the teacher."""
    widths = cfg["widths"]
    family = cfg["family"]
    if family == "mlp":
        k_w, k_b = jax.random.split(key)
        teacher = init_params(cfg, k_w, scale=1.0)
        for name, k in zip(
            [p for p in teacher if p.startswith("b")], jax.random.split(k_b, len(widths) - 1), strict=True
        ):
            teacher[name] = 0.5 * jax.random.normal(k, teacher[name].shape)
        from llc.models import forward

        return forward(cfg, teacher, x), {"kind": "random mlp", "activation": cfg["activation"]}
    m, n_out = widths[0], widths[-1]
    rank = min(m, n_out) if family == "linear" else cfg["true_rank"]
    if rank == 0:
        return jnp.zeros((x.shape[0], n_out)), {"kind": "zero map", "rank": 0}
    k_u, k_v, k_s = jax.random.split(key, 3)
    u, _ = jnp.linalg.qr(jax.random.normal(k_u, (n_out, rank)))
    v, _ = jnp.linalg.qr(jax.random.normal(k_v, (m, rank)))
    # Singular values well above the noise floor sqrt(m/n): the true rank is what the data show.
    s = jax.random.uniform(k_s, (rank,), minval=1.0, maxval=2.0)
    matrix = (u * s) @ v.T
    return x @ matrix.T, {"kind": "linear map", "rank": int(rank), "singular_values": np.asarray(s).tolist()}


def make_data(cfg: dict, key):
    """Inputs x ~ N(0, I), outputs teacher(x) + noise * N(0, I); returns (x, y, teacher description)."""
    k_x, k_t, k_e = jax.random.split(key, 3)
    x = jax.random.normal(k_x, (cfg["n"], cfg["widths"][0]))
    clean, teacher = teacher_outputs(cfg, x, k_t)
    y = clean + cfg["noise"] * jax.random.normal(k_e, clean.shape)
    return x, y, teacher


def train_adam(cfg: dict, x, y, key) -> tuple[dict, np.ndarray]:
    """Full-batch Adam from a small random start; returns (w*, loss every step)."""
    training = cfg["training"]
    params = init_params(cfg, key, scale=training["init_scale"])
    optimizer = optax.adam(training["learning_rate"])

    def step(carry, _):
        params, opt_state = carry
        loss, grads = jax.value_and_grad(lambda p: mse(cfg, p, x, y))(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), loss

    (params, _), losses = jax.lax.scan(step, (params, optimizer.init(params)), None, length=training["steps"])
    return params, np.asarray(losses)


def solve_least_squares(x, y) -> dict:
    """Exact minimiser of the linear-regression loss (the estimator's finite-n formula assumes it)."""
    solution, *_ = jnp.linalg.lstsq(x, y)
    return {"w0": solution.T}


def build_target(target_id: str, name: str, cfg: dict, out_data, out_params, out_meta, log) -> dict:
    """Build one target and write its three files atomically; return its meta record."""
    start = time.time()
    key_data, key_init = jax.random.split(jax.random.key(cfg["seed"]))
    x, y, teacher = make_data(cfg, key_data)
    if cfg["family"] == "linear":
        params, losses = solve_least_squares(x, y), np.zeros(0)
    else:
        params, losses = train_adam(cfg, x, y, key_init)
    loss_fn = lambda p: mse(cfg, p, x, y)  # noqa: E731
    l0, grads = jax.value_and_grad(loss_fn)(params)
    grad_norm = float(jnp.sqrt(sum(jnp.sum(g**2) for g in jax.tree_util.tree_leaves(grads))))
    if not np.isfinite(float(l0)) or not np.all(np.isfinite(losses)):
        raise TargetError(
            f"target {target_id} ({name}): training diverged (final loss {float(l0)}); "
            f"lower training.learning_rate (now {cfg['training']['learning_rate']})"
        )
    log.info("target %s (%s): L0 = %.6g, |grad L(w*)| = %.3g", target_id, name, float(l0), grad_norm)
    with atomic_path(out_data, suffix=".npz") as tmp:
        np.savez(tmp, x=np.asarray(x, dtype=np.float64), y=np.asarray(y, dtype=np.float64))
    with atomic_path(out_params, suffix=".npz") as tmp:
        np.savez(tmp, **params_to_npz(params))
    lam = theoretical_lambda(cfg["family"], cfg["widths"], cfg.get("true_rank", 0))
    meta = {
        "target_id": target_id,
        "name": name,
        "config": cfg,
        "dims": {
            "n": cfg["n"],
            "input_dim": cfg["widths"][0],
            "num_params": num_params(cfg["family"], cfg["widths"]),
        },
        "dtype": str(x.dtype),
        "L0": float(l0),
        "grad_norm_at_w_star": grad_norm,
        "training_final_losses": losses[-5:].tolist(),
        "teacher": teacher,
        "truth": {
            "lambda": lam,
            "source": {"linear": "d/2", "rrr": "Aoyagi & Watanabe 2005", "dln": "Aoyagi 2024"}.get(
                cfg["family"]
            ),
        },
        "versions": {"jax": jax.__version__, "optax": optax.__version__, "numpy": np.__version__},
        "host": platform.node(),
        "wall_time_s": time.time() - start,
    }
    write_json(out_meta, meta)
    return meta


if "snakemake" in globals():
    _log = setup_logging(snakemake.log[0])
    try:
        build_target(
            snakemake.wildcards.target_id,
            snakemake.params.target["name"],
            snakemake.params.target["config"],
            snakemake.output.data,
            snakemake.output.params,
            snakemake.output.meta,
            _log,
        )
    except TargetError as err:
        _log.error("%s", err)
        raise
