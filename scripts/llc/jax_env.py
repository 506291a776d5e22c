"""Set JAX's process-wide switches before any array exists (one Snakemake job = one process)."""

from __future__ import annotations

import os


def configure_jax(platforms: str, x64: bool):
    """Pick the JAX backend and precision for this process; return the ``jax`` module.

    ``platforms`` comes from the rule's ``jax_platforms`` resource ("cpu" unless a profile
    sends the rule to a GPU partition with "cuda"). On a GPU, preallocation is switched off
    so several jobs may share one device.
    """
    os.environ.setdefault("JAX_PLATFORMS", platforms)
    if platforms != "cpu":
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    import jax

    jax.config.update("jax_enable_x64", bool(x64))
    return jax
