"""A small model in the form family ``custom`` expects: ``function(key, **model_args)`` returns
(initial params, apply). Used by tests/llc/test_llc_features.py (copied into the workdir)."""

import jax
import jax.numpy as jnp


def two_layer(key, inputs=2, hidden=4, outputs=1):
    """A tanh network with one hidden layer, parameters as a nested dict."""
    k_hidden, k_out = jax.random.split(key)
    params = {
        "hidden": {
            "w": jax.random.normal(k_hidden, (inputs, hidden)) / jnp.sqrt(inputs),
            "b": jnp.zeros(hidden),
        },
        "out": {"w": jax.random.normal(k_out, (hidden, outputs)) / jnp.sqrt(hidden), "b": jnp.zeros(outputs)},
    }

    def apply(params, x):
        h = jnp.tanh(x @ params["hidden"]["w"] + params["hidden"]["b"])
        return h @ params["out"]["w"] + params["out"]["b"]

    return params, apply
