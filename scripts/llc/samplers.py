"""Samplers of the localized tempered posterior and the LLC estimate from their loss traces.

    p(w) ∝ exp(-nβ L_n(w) - γ/2 ||w - w*||²),     λ̂ = nβ (E_p[L_n(w)] - L_n(w*))

* ``run_sgld``: hand-written SGLD in the form of Lau et al. (w ← w - ε/2 ∇U + N(0, ε)),
  chains vmapped over one ``lax.scan``; full batch or minibatch (indices with replacement).
  It records the full-batch loss and the MALA acceptance probability of the step, a step-size
  diagnostic: at every step with the full batch (no extra gradient: the next step needs it),
  every ``eval_every`` steps with a minibatch (two full-batch gradients per evaluation).
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


def sgld_sampler(loss_fn, w_star, data, *, nbeta, gamma, chains, draws, batch_size=None, eval_every=1):
    """Build the jitted SGLD sampler ``(key, step_size) -> (loss, mala_acceptance)``, each of
    shape (chains, draws // eval_every).

    ``loss_fn(w, x, y)`` is the mean loss; ``data`` = (x, y) as device arrays. The chains start
    at w*. With the full batch every step is recorded. With a minibatch (indices drawn with
    replacement) the full-batch loss is evaluated every ``eval_every`` steps, together with the
    MALA acceptance probability the step taken from that point would have had under the
    full-batch potential: the diagnostics then describe the posterior, not the batch noise.
    The step size, nβ and γ are arguments, not constants: one compile serves a calibration grid
    (``sample(key, step_size, nbeta=..., gamma=...)``; the built values are the defaults), and
    the benchmark times calls, not compiles.
    """
    x, y = data
    n = x.shape[0]
    value_and_grad = jax.value_and_grad(loss_fn)

    def chain(key, step_size, nbeta, gamma):
        def potential(w, loss):
            return nbeta * loss + 0.5 * gamma * jnp.sum((w - w_star) ** 2)

        def drift(w, grad):
            return nbeta * grad + gamma * (w - w_star)

        def log_q(to, frm, frm_drift):
            return -jnp.sum((to - frm + 0.5 * step_size * frm_drift) ** 2) / (2 * step_size)

        def mala(w, loss, grad, proposal, new_loss, new_grad):
            log_alpha = (
                potential(w, loss)
                - potential(proposal, new_loss)
                + log_q(w, proposal, drift(proposal, new_grad))
                - log_q(proposal, w, drift(w, grad))
            )
            return jnp.minimum(1.0, jnp.exp(log_alpha))

        def noise(key, w):
            return jnp.sqrt(step_size) * jax.random.normal(key, w.shape)

        def full_batch_step(carry, key):
            w, loss, grad = carry
            proposal = w - 0.5 * step_size * drift(w, grad) + noise(key, w)
            new_loss, new_grad = value_and_grad(proposal, x, y)
            return (proposal, new_loss, new_grad), (loss, mala(w, loss, grad, proposal, new_loss, new_grad))

        def minibatch_step(w, key):
            k_idx, k_noise = jax.random.split(key)
            idx = jax.random.randint(k_idx, (batch_size,), 0, n)
            _, grad = value_and_grad(w, x[idx], y[idx])
            return w - 0.5 * step_size * drift(w, grad) + noise(k_noise, w), None

        def evaluated_block(w, key):
            # One full-batch evaluation, the step from there, then eval_every - 1 plain steps.
            k_first, k_rest = jax.random.split(key)
            loss, grad = value_and_grad(w, x, y)
            proposal, _ = minibatch_step(w, k_first)
            new_loss, new_grad = value_and_grad(proposal, x, y)
            accept = mala(w, loss, grad, proposal, new_loss, new_grad)
            w, _ = jax.lax.scan(minibatch_step, proposal, jax.random.split(k_rest, eval_every - 1))
            return w, (loss, accept)

        if batch_size is None:
            loss0, grad0 = value_and_grad(w_star, x, y)
            _, out = jax.lax.scan(full_batch_step, (w_star, loss0, grad0), jax.random.split(key, draws))
        else:
            _, out = jax.lax.scan(evaluated_block, w_star, jax.random.split(key, draws // eval_every))
        return out

    @jax.jit
    def compiled(key, step_size, nbeta, gamma):
        keys = jax.random.split(key, chains)
        return jax.vmap(chain, in_axes=(0, None, None, None))(keys, step_size, nbeta, gamma)

    def sample(key, step_size, nbeta=nbeta, gamma=gamma):
        return compiled(key, step_size, float(nbeta), float(gamma))

    return sample


def run_sgld(
    key, loss_fn, w_star, data, *, nbeta, gamma, step_size, chains, draws, batch_size=None, eval_every=1
):
    """SGLD chains started at w*; returns numpy traces and the work done.

    ``loss`` and ``mala_acceptance`` have shape (chains, draws // eval_every) (eval_every is 1
    with the full batch): full-batch losses at every recorded step.
    """
    eval_every = 1 if batch_size is None else eval_every
    sampler = sgld_sampler(
        loss_fn,
        w_star,
        data,
        nbeta=nbeta,
        gamma=gamma,
        chains=chains,
        draws=draws,
        batch_size=batch_size,
        eval_every=eval_every,
    )
    return sgld_traces(sampler, key, step_size, data[0].shape[0], chains, draws, batch_size, eval_every)


def sgld_traces(sampler, key, step_size, n, chains, draws, batch_size, eval_every, **nbeta_gamma) -> dict:
    """Call a built SGLD sampler (``nbeta``, ``gamma`` override the built ones); return numpy
    traces and the work done."""
    losses, accept = sampler(key, step_size, **nbeta_gamma)
    losses.block_until_ready()
    if batch_size is None:
        grad_evals, fge = chains * (draws + 1), chains * (draws + 1)
    else:
        evals = chains * (draws // eval_every)
        steps = evals * eval_every
        # Each evaluation costs two full-batch gradients (at the point and at its proposal).
        grad_evals, fge = steps + 2 * evals, steps * batch_size / n + 2 * evals
    return {
        "loss": np.asarray(losses),
        "mala_acceptance": np.asarray(accept),
        "grad_evals": grad_evals,
        "full_grad_equivalents": fge,
        "eval_every": eval_every,
    }


def hmc_logdensity(loss_fn, w_star, data, nbeta, gamma):
    """Log density of the localized tempered posterior, for BlackJAX."""
    x, y = data

    def logdensity(w):
        return -nbeta * loss_fn(w, x, y) - 0.5 * gamma * jnp.sum((w - w_star) ** 2)

    return logdensity


def hmc_adapt(key, logdensity, w_star, *, warmup, num_integration_steps, target_acceptance):
    """Step size and diagonal inverse mass matrix from BlackJAX's window adaptation on one chain."""
    adaptation = blackjax.window_adaptation(
        blackjax.hmc,
        logdensity,
        target_acceptance_rate=target_acceptance,
        num_integration_steps=num_integration_steps,
    )
    (_, parameters), _ = jax.jit(lambda k: adaptation.run(k, w_star, num_steps=warmup))(key)
    return parameters


def hmc_sampler(
    logdensity, w_star, parameters, *, nbeta, gamma, chains, draws, num_integration_steps, step_jitter
):
    """Build the jitted HMC sampler ``key -> (loss, acceptance, divergent)`` of shape (chains, draws)."""
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

    return jax.jit(lambda key: jax.vmap(chain)(jax.random.split(key, chains)))


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
    parameters = hmc_adapt(
        k_adapt,
        logdensity,
        w_star,
        warmup=warmup,
        num_integration_steps=num_integration_steps,
        target_acceptance=target_acceptance,
    )
    sampler = hmc_sampler(
        logdensity,
        w_star,
        parameters,
        nbeta=nbeta,
        gamma=gamma,
        chains=chains,
        draws=draws,
        num_integration_steps=num_integration_steps,
        step_jitter=step_jitter,
    )
    losses, accept, divergent = sampler(k_chains)
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
    # Per-chain Monte Carlo error and trace quantiles feed the flags (llc.flags).
    q25, q75 = np.quantile(llc, [0.25, 0.75])
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
        "llc_max_per_chain": llc.max(axis=1).tolist(),
        "llc_q25": float(q25),
        "llc_q75": float(q75),
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
