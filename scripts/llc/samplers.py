"""Samplers of the localized tempered posterior and the LLC estimate from their loss traces.

    p(w) ∝ exp(-nβ L_n(w) - γ/2 ||w - w*||²),     λ̂ = nβ (E_p[L_n(w)] - L_n(w*))

* ``run_sgld``: hand-written SGLD in the form of Lau et al. (w ← w - ε/2 ∇U + N(0, ε)),
  chains vmapped over one ``lax.scan``; full batch or minibatch (indices with replacement).
  With a full batch it also records the MALA acceptance probability of every proposal, a
  step-size diagnostic that costs no extra gradient (the next step needs that gradient anyway).
* ``run_hmc``: BlackJAX HMC after ``blackjax.window_adaptation`` (step size and a diagonal mass
  matrix), adapted on one chain, then all chains vmapped with the adapted parameters.

Both return the loss trace L(w_{c,t}) of shape (chains, draws) including burn-in; the
analysis discards burn-in.
"""

from __future__ import annotations

import time

import blackjax
import jax
import jax.numpy as jnp
import numpy as np

from llc import diagnostics


def run_sgld(key, loss_fn, w_star, data, *, nbeta, gamma, step_size, chains, draws, batch_size=None):
    """SGLD chains started at w*; returns dict of numpy arrays and the gradient-evaluation count.

    ``loss_fn(w, x, y)`` is the mean loss; ``data`` = (x, y) as device arrays.
    """
    x, y = data
    n = x.shape[0]
    value_and_grad = jax.value_and_grad(loss_fn)

    def potential(w, loss):
        return nbeta * loss + 0.5 * gamma * jnp.sum((w - w_star) ** 2)

    def drift(w, grad):
        return nbeta * grad + gamma * (w - w_star)

    def log_q(to, frm, frm_drift):
        return -jnp.sum((to - frm + 0.5 * step_size * frm_drift) ** 2) / (2 * step_size)

    def full_batch_step(carry, key):
        w, loss, grad = carry
        d = drift(w, grad)
        proposal = w - 0.5 * step_size * d + jnp.sqrt(step_size) * jax.random.normal(key, w.shape)
        new_loss, new_grad = value_and_grad(proposal, x, y)
        log_alpha = (
            potential(w, loss)
            - potential(proposal, new_loss)
            + log_q(w, proposal, drift(proposal, new_grad))
            - log_q(proposal, w, d)
        )
        return (proposal, new_loss, new_grad), (loss, jnp.minimum(1.0, jnp.exp(log_alpha)))

    def minibatch_step(w, key):
        k_idx, k_noise = jax.random.split(key)
        idx = jax.random.randint(k_idx, (batch_size,), 0, n)
        loss, grad = value_and_grad(w, x[idx], y[idx])
        new_w = (
            w - 0.5 * step_size * drift(w, grad) + jnp.sqrt(step_size) * jax.random.normal(k_noise, w.shape)
        )
        return new_w, (loss, jnp.nan)

    def chain(key):
        keys = jax.random.split(key, draws)
        if batch_size is None:
            loss0, grad0 = value_and_grad(w_star, x, y)
            _, (losses, accept) = jax.lax.scan(full_batch_step, (w_star, loss0, grad0), keys)
        else:
            _, (losses, accept) = jax.lax.scan(minibatch_step, w_star, keys)
        return losses, accept

    losses, accept = jax.jit(jax.vmap(chain))(jax.random.split(key, chains))
    losses.block_until_ready()
    per_step = 1 if batch_size is None else batch_size / n
    return {
        "loss": np.asarray(losses),
        "mala_acceptance": np.asarray(accept),
        "grad_evals": chains * draws + (chains if batch_size is None else 0),
        "full_grad_equivalents": chains * draws * per_step,
    }


def hmc_logdensity(loss_fn, w_star, data, nbeta, gamma):
    """Log density of the localized tempered posterior, for BlackJAX."""
    x, y = data

    def logdensity(w):
        return -nbeta * loss_fn(w, x, y) - 0.5 * gamma * jnp.sum((w - w_star) ** 2)

    return logdensity


def run_hmc(
    key,
    loss_fn,
    w_star,
    data,
    *,
    nbeta,
    gamma,
    chains,
    draws,
    warmup,
    num_integration_steps,
    target_acceptance,
    step_jitter=0.0,
):
    """Window-adapted BlackJAX HMC chains started at w*; returns numpy traces and work counts."""
    logdensity = hmc_logdensity(loss_fn, w_star, data, nbeta, gamma)
    k_adapt, k_chains = jax.random.split(key)
    adaptation = blackjax.window_adaptation(
        blackjax.hmc,
        logdensity,
        target_acceptance_rate=target_acceptance,
        num_integration_steps=num_integration_steps,
    )
    (_, parameters), _ = jax.jit(lambda k: adaptation.run(k, w_star, num_steps=warmup))(k_adapt)
    hmc_kernel = blackjax.mcmc.hmc.build_kernel()
    step_size = parameters["step_size"]

    def chain(key):
        def step(state, key):
            k_jitter, k_step = jax.random.split(key)
            # Step-size jitter breaks the resonance of a fixed trajectory length, which
            # otherwise makes the loss (an energy-like statistic) mix slowly on near-Gaussian targets.
            jitter = jax.random.uniform(k_jitter, minval=1 - step_jitter, maxval=1 + step_jitter)
            state, info = hmc_kernel(
                k_step,
                state,
                logdensity,
                step_size * jitter,
                parameters["inverse_mass_matrix"],
                num_integration_steps,
            )
            # The loss is recovered from the log density the kernel already computed.
            loss = (-state.logdensity - 0.5 * gamma * jnp.sum((state.position - w_star) ** 2)) / nbeta
            return state, (loss, info.acceptance_rate, info.is_divergent)

        init = blackjax.hmc(logdensity, **parameters).init(w_star)
        return jax.lax.scan(step, init, jax.random.split(key, draws))[1]

    losses, accept, divergent = jax.jit(jax.vmap(chain))(jax.random.split(k_chains, chains))
    losses.block_until_ready()
    # Each HMC step runs num_integration_steps leapfrog steps, one gradient each.
    grad_evals = (warmup + chains * draws) * num_integration_steps
    return {
        "loss": np.asarray(losses),
        "acceptance": np.asarray(accept),
        "divergent": np.asarray(divergent),
        "grad_evals": grad_evals,
        "full_grad_equivalents": grad_evals,
        "step_size": float(parameters["step_size"]),
    }


def llc_statistics(loss, l0: float, nbeta: float, burnin: int) -> dict:
    """LLC mean, spread, ESS and R-hat from a (chains, draws) loss trace.

    ``llc_std`` is the spread of the per-chain estimates (devinterp's ``llc/std``);
    ``llc_sem`` = std of the pooled trace / sqrt(bulk ESS).
    """
    kept = np.asarray(loss[:, burnin:], dtype=np.float64)
    llc = nbeta * (kept - l0)
    per_chain = llc.mean(axis=1)
    chains = llc.shape[0]
    long_enough = llc.shape[1] >= 4
    ess_bulk = diagnostics.ess_bulk(llc) if long_enough else float("nan")
    ess_tail = diagnostics.ess_tail(llc) if long_enough else float("nan")
    r_hat = diagnostics.rhat(llc) if chains >= 2 and long_enough else float("nan")
    ess = min(ess_bulk, ess_tail)
    return {
        "llc_mean": float(llc.mean()),
        "llc_std": float(per_chain.std(ddof=1)) if chains > 1 else float("nan"),
        "llc_trace_std": float(llc.std(ddof=1)),
        "llc_sem": float(llc.std(ddof=1) / np.sqrt(ess)) if ess > 0 else float("nan"),
        "llc_per_chain": per_chain.tolist(),
        "ess_bulk": ess_bulk,
        "ess_tail": ess_tail,
        "ess": ess,
        "r_hat": r_hat,
        "fraction_below_l0": float(np.mean(kept < l0)),
    }


def linear_exact_llc(x, num_outputs: int, nbeta: float, gamma: float) -> float:
    """Exact E_p[nβ (L_n - L_n(w*))] for linear regression with the mean-over-entries MSE.

    L_n - L0 = ½ (w-w*)ᵀ H (w-w*) with H = 2 Σ̂ / N per output (Σ̂ = xᵀx/n), so the localized
    posterior is Gaussian with precision nβH + γI and the expectation is
    Σ_i nβ h_i / (2 (nβ h_i + γ)) over the eigenvalues h_i of H (each repeated N times).
    """
    x = np.asarray(x, dtype=np.float64)
    cov = x.T @ x / x.shape[0]
    h = 2 * np.linalg.eigvalsh(cov) / num_outputs
    return float(num_outputs * np.sum(nbeta * h / (2 * (nbeta * h + gamma))))


def timed(fn, *args, **kwargs):
    """(result, seconds) of one call."""
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start
