"""`python -m benchmarks [--quick] [--only GROUPS] [--out DIR]`: every benchmark, one table (see suite.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from suite import main  # noqa: E402

sys.exit(main())
