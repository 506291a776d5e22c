"""Family ``custom``: the user's dataset file and JAX model.

The model is an importable function ``package.module:function`` called as
``function(key, **model_args)`` that returns ``(params, apply)``: initial parameters (any
pytree of arrays) and a pure ``apply(params, x) -> predictions``. A plain function, not a
Flax or Equinox module, because it is what every JAX library reduces to in two lines
(Flax: ``return model.init(key, x0), model.apply``; Equinox: ``params, static =
eqx.partition(m, eqx.is_array)`` and ``apply = lambda p, x: eqx.combine(p, static)(x)``):
the workflow then depends on none of them, and the samplers see one flat vector either way.

The dataset is a ``.npz`` with arrays ``x`` (n, inputs) and ``y`` (n, outputs) or (n,), or
a ``.parquet`` file with the columns named in ``inputs`` and ``outputs``.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np


class CustomModelError(RuntimeError):
    """The model function or the dataset cannot be used; the message says which and why."""


def import_model(spec: str, model_dir: str):
    """The function named by ``package.module:function``, importable from ``model_dir``."""
    module_name, function_name = spec.split(":")
    directory = str(Path(model_dir).resolve())
    if directory not in sys.path:
        sys.path.insert(0, directory)
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise CustomModelError(
            f"model '{spec}': cannot import {module_name} from {directory}: {err}"
        ) from None
    if not callable(getattr(module, function_name, None)):
        raise CustomModelError(f"model '{spec}': {module_name} has no function {function_name}")
    return getattr(module, function_name)


def custom_model(cfg: dict, key):
    """(initial params, apply) from the user's function; checked to be a pair with a callable."""
    function = import_model(cfg["model"], cfg["model_dir"])
    result = function(key, **cfg["model_args"])
    if not (isinstance(result, tuple) and len(result) == 2 and callable(result[1])):
        raise CustomModelError(
            f"model '{cfg['model']}' must return (params, apply), got {type(result).__name__}"
        )
    return result


def load_dataset(cfg: dict) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) as float64 arrays of shape (n, inputs) and (n, outputs)."""
    path = Path(cfg["data"])
    if path.suffix == ".parquet":
        import pandas as pd

        table = pd.read_parquet(path)
        absent = [c for c in [*cfg["inputs"], *cfg["outputs"]] if c not in table.columns]
        if absent:
            raise CustomModelError(f"dataset {path}: no column(s) {', '.join(absent)}")
        x, y = table[cfg["inputs"]].to_numpy(np.float64), table[cfg["outputs"]].to_numpy(np.float64)
    else:
        with np.load(path) as data:
            absent = [k for k in ("x", "y") if k not in data.files]
            if absent:
                raise CustomModelError(f"dataset {path}: no array(s) {', '.join(absent)} (has {data.files})")
            x, y = np.asarray(data["x"], np.float64), np.asarray(data["y"], np.float64)
    x = x.reshape(len(x), -1)
    y = y.reshape(len(y), -1)
    if len(x) != len(y) or len(x) < 3:
        raise CustomModelError(
            f"dataset {path}: {len(x)} inputs and {len(y)} outputs (need equal, at least 3)"
        )
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise CustomModelError(f"dataset {path}: contains NaN or infinite values")
    return x, y
