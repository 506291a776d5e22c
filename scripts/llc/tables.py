"""Small helpers for tables of runs (no JAX)."""

from __future__ import annotations

import json


def flatten(config: dict, prefix: str) -> dict:
    """``{"a": {"b": 1}}`` -> ``{"prefix.a.b": 1}``; lists become JSON text (parquet-friendly)."""
    flat = {}
    for key, value in config.items():
        name = f"{prefix}.{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, name))
        elif isinstance(value, list):
            flat[name] = json.dumps(value)
        else:
            flat[name] = value
    return flat
