"""Generate the bundled example inputs of every workflow (deterministic; `make examples`).

Each workflow package under scripts/ may provide ``example_inputs.make(outdir: Path)``,
which writes its inputs under ``outdir`` (e.g. ``examples/af3``) and is idempotent.
"""

import importlib
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

WORKFLOWS = ["af3", "rnaseq", "trendy", "llc", "dali"]


def main(root: Path, names: list[str]) -> None:
    for name in names or WORKFLOWS:
        try:
            module = importlib.import_module(f"{name}.example_inputs")
        except ModuleNotFoundError as err:
            if err.name in (name, f"{name}.example_inputs"):
                print(
                    f"examples: {name}: no input files (its inputs are defined in config/config.yaml)",
                    flush=True,
                )
                continue
            raise
        start = time.time()
        module.make(root / name)
        print(f"examples: {name} -> {root / name} ({time.time() - start:.1f} s)", flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "examples"), sys.argv[2:])
