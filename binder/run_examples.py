"""Run every example notebook that needs neither network nor GPU (outputs are not saved).

Used by ``binder/postBuild`` to fill the cache, and by the tests to check that a venv built from
``binder/`` alone runs the notebooks. A notebook that needs more says so in its metadata:
``{"dataexplore": {"requires": ["network", "gpu"]}}``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def runnable(path: Path) -> bool:
    nb = nbformat.read(path, as_version=4)
    return not nb.metadata.get("dataexplore", {}).get("requires")


def main(kernel: str = "python3") -> int:
    for path in sorted(EXAMPLES.glob("*.ipynb")):
        if not runnable(path):
            print(f"skip {path.name} (needs {', '.join(nbformat.read(path, 4).metadata['dataexplore']['requires'])})")
            continue
        t0 = time.perf_counter()
        nb = nbformat.read(path, as_version=4)
        NotebookClient(nb, timeout=1200, kernel_name=kernel, resources={"metadata": {"path": str(EXAMPLES)}}).execute()
        print(f"ran {path.name} in {time.perf_counter() - t0:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:2]))
