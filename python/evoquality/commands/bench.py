"""`evoquality bench`: run the benchmark suite of the source checkout this package comes from (benchmarks/suite.py).

The benchmarks are scripts beside the package, not part of it (the wheel does not ship them), so the command looks
for a checkout: the one an editable install points into, else the current directory or one above it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Iterable, Optional


def find_checkout(candidates: Optional[Iterable[Path]] = None) -> Path:
    """The first of `candidates` (default: this package's source tree, the current directory and its parents)
    holding benchmarks/suite.py; FileNotFoundError with the reason when none does."""
    if candidates is None:
        cwd = Path.cwd().resolve()
        candidates = (Path(__file__).resolve().parents[3], cwd, *cwd.parents)
    for root in candidates:
        if (root / "benchmarks" / "suite.py").is_file():
            return root
    raise FileNotFoundError("no source checkout found (benchmarks/suite.py is not part of the installed package); "
                            "run it inside a clone of the EvoQuality repository, or `python -m benchmarks` from the "
                            "clone's root")


def _suite():
    benchmarks = str(find_checkout() / "benchmarks")
    if benchmarks not in sys.path:
        sys.path.insert(0, benchmarks)
    import suite

    return suite


def add_arguments(parser: argparse.ArgumentParser) -> None:
    _suite().add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    return _suite().run(args)
