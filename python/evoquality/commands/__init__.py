"""The `evoquality` commands, one module each, and the one place that turns a user's mistake into an error message.

Every command module has `add_arguments(parser)` and `run(args) -> exit code`. A command that meets bad input (a
flag value, a missing file, a checkpoint that is not a VLM, an optional package that is not installed) raises
`ValueError`, `FileNotFoundError` or `ImportError` with a message that names the argument; `report_user_errors`
prints it as ``PROG: error: MESSAGE`` and the command exits with status 2, as argparse does for a bad flag. Any
other exception is a bug and keeps its traceback.

`evoquality --help` imports every module here, so they import the library inside their functions: only the
command that runs pays for torch, transformers or TRL.
"""

from __future__ import annotations

import sys
from typing import Callable

# CheckpointError, ConfigMismatch, ManifestError and ImageDecodeError are ValueErrors.
USER_ERRORS = (ValueError, FileNotFoundError, ImportError)


def report_user_errors(prog: str, fn: Callable[[], int]) -> int:
    """fn() -> its exit code; a user error is printed to stderr as ``PROG: error: ...`` and gives 2."""
    try:
        return int(fn() or 0)
    except USER_ERRORS as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
