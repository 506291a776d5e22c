"""Stage A: draw data from a teacher plus noise (or read the user's dataset for ``custom``),
train a student to w* with full-batch Adam (solve least squares exactly for linear regression,
or load given parameters), and write data, parameters and meta.

A target that cannot be built (training diverged, a custom model that does not import) still
writes its three files: meta.json with ``status: failed`` and the error, empty arrays. Its runs
then record the failure without sampling, the aggregate lists them, and ``llc_check`` fails the
workflow naming them and removes these files, so that the next run builds it again.

Run by rule ``llc_build_target``; x64 is switched on at the top of the process, before any
array exists, when the target asks for it (JAX's x64 flag is process-wide).
"""

import platform
import time

if "snakemake" in globals():
    from llc.jax_env import configure_jax

    configure_jax(snakemake.resources.get("jax_platforms", "cpu"), snakemake.params.target["x64"])

import jax
import jax.numpy as jnp
import numpy as np
import optax
from common import atomic_path, setup_logging, write_json

from llc.models import forward, init_params, model_functions, mse, params_from_npz, params_to_npz
from llc.truth import num_params, theoretical_lambda_multiplicity


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


def train_adam(apply, params, x, y, training: dict) -> tuple[dict, np.ndarray]:
    """Full-batch Adam from ``params``; returns (w*, loss every step)."""
    optimizer = optax.adam(training["learning_rate"])

    def step(carry, _):
        params, opt_state = carry
        loss, grads = jax.value_and_grad(lambda p: mse(apply, p, x, y))(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), loss

    (params, _), losses = jax.lax.scan(step, (params, optimizer.init(params)), None, length=training["steps"])
    return params, np.asarray(losses)


def solve_least_squares(x, y) -> dict:
    """Exact minimiser of the linear-regression loss (the estimator's finite-n formula assumes it)."""
    solution, *_ = jnp.linalg.lstsq(x, y)
    return {"w0": solution.T}


def target_data(cfg: dict, key):
    """(x, y, teacher description): the user's dataset for ``custom``, else teacher + noise."""
    if cfg["family"] == "custom":
        from llc.custom import load_dataset

        x, y = load_dataset(cfg)
        return jnp.asarray(x), jnp.asarray(y), {"kind": "dataset", "path": cfg["data"]}
    return make_data(cfg, key)


def fit_target(cfg: dict, x, y, key):
    """(w*, apply, training losses): exact least squares, the given parameters, or Adam."""
    training = cfg.get("training", {})
    params, apply = model_functions(cfg, key, scale=training.get("init_scale", 1.0))
    if cfg["family"] == "linear":
        return solve_least_squares(x, y), apply, np.zeros(0)
    if cfg["family"] == "custom" and cfg["params"]:
        with np.load(cfg["params"]) as npz:
            return params_from_npz(npz, params, x.dtype), apply, np.zeros(0)
    params, losses = train_adam(apply, params, x, y, training)
    return params, apply, losses


def build_target(target_id: str, cfg: dict, out_data, out_params, out_meta, log) -> dict:
    """Build one target and write its three files atomically; return its meta record.

    Raises :class:`TargetError` naming the target when it cannot be built.
    """
    start = time.time()
    key_data, key_init = jax.random.split(jax.random.key(cfg["seed"]))
    try:
        x, y, teacher = target_data(cfg, key_data)
        params, apply, losses = fit_target(cfg, x, y, key_init)
    except Exception as err:  # the user's model code can raise anything; record it, name it
        raise TargetError(f"target {target_id}: {type(err).__name__}: {err}") from err
    l0, grads = jax.value_and_grad(lambda p: mse(apply, p, x, y))(params)
    grad_norm = float(jnp.sqrt(sum(jnp.sum(g**2) for g in jax.tree_util.tree_leaves(grads))))
    if not np.isfinite(float(l0)) or not np.all(np.isfinite(losses)):
        raise TargetError(
            f"target {target_id}: training diverged (final loss {float(l0)}); "
            f"lower training.learning_rate (now {cfg['training']['learning_rate']})"
        )
    log.info("target %s: L0 = %.6g, |grad L(w*)| = %.3g", target_id, float(l0), grad_norm)
    with atomic_path(out_data, suffix=".npz") as tmp:
        np.savez(tmp, x=np.asarray(x, dtype=np.float64), y=np.asarray(y, dtype=np.float64))
    with atomic_path(out_params, suffix=".npz") as tmp:
        np.savez(tmp, **params_to_npz(params))
    if cfg["family"] == "custom":
        lam, multiplicity, size = None, None, int(sum(np.size(p) for p in jax.tree_util.tree_leaves(params)))
    else:
        lam, multiplicity = theoretical_lambda_multiplicity(
            cfg["family"], cfg["widths"], cfg.get("true_rank", 0)
        )
        size = num_params(cfg["family"], cfg["widths"])
    meta = {
        "target_id": target_id,
        "status": "ok",
        "config": cfg,
        "dims": {"n": int(x.shape[0]), "input_dim": int(x.shape[1]), "num_params": size},
        "dtype": str(x.dtype),
        "L0": float(l0),
        "grad_norm_at_w_star": grad_norm,
        "training_final_losses": losses[-5:].tolist(),
        "teacher": teacher,
        "truth": {
            "lambda": lam,
            "multiplicity": multiplicity,
            "source": {"linear": "d/2", "rrr": "Aoyagi & Watanabe 2005", "dln": "Aoyagi 2024"}.get(
                cfg["family"]
            ),
        },
        "versions": {"jax": jax.__version__, "optax": optax.__version__, "numpy": np.__version__},
        "host": platform.node(),
        "wall_time_s": time.time() - start,
    }
    if x.shape[0] < size:
        log.warning("target %s: n = %d is below the %d parameters", target_id, x.shape[0], size)
    write_json(out_meta, meta)
    return meta


def write_failed_target(target_id: str, cfg: dict, error: str, out_data, out_params, out_meta) -> None:
    """Record a target that could not be built: empty arrays, meta with status failed and the error."""
    for path in (out_data, out_params):
        with atomic_path(path, suffix=".npz") as tmp:
            np.savez(tmp)
    write_json(out_meta, {"target_id": target_id, "status": "failed", "error": error, "config": cfg})


if "snakemake" in globals():
    _log = setup_logging(snakemake.log[0])
    _out = (snakemake.output.data, snakemake.output.params, snakemake.output.meta)
    try:
        build_target(snakemake.wildcards.target_id, snakemake.params.target, *_out, _log)
    except TargetError as err:
        _log.error("%s", err)
        write_failed_target(snakemake.wildcards.target_id, snakemake.params.target, str(err), *_out)
