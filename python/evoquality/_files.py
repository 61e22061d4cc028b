"""The package's one atomic file writer and one JSONL reader.

Stdlib only and importing nothing of the package, so every layer (data, labelling, training, evaluation, toy) may
use it without an upward import edge.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Union

PathLike = Union[str, os.PathLike]


class JsonlError(ValueError):
    """A line of a JSONL file is not JSON; the message names ``file:line``."""


def atomic_write(path: PathLike, data: Union[str, bytes]) -> None:
    """Replace `path` with `data` (str is written as UTF-8) so that readers and crashes see the old file or the
    new one, never a mix.

    The temporary file sits in the target's directory because a rename is atomic only within one file system. The
    file is fsynced before the rename (otherwise a power cut can leave the new name pointing at empty blocks) and
    the directory after it (otherwise the rename itself may not survive). Should anything fail before the rename,
    the temporary file is removed and the old file is untouched.
    """
    path = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def jsonl_rows(lines: Iterable[Union[str, bytes]], where: PathLike, *,
               error: Callable[[str], Exception] = JsonlError) -> Iterator[tuple[int, Any]]:
    """(line number, value) of each non-blank line of already-split JSONL text; numbering starts at 1.

    A line that is not JSON raises ``error("<where>:<line>: not JSON (<reason>)")``: a caller passes its own
    exception class (a dataset reader's ManifestError) or a function that prefixes the argument's name.
    """
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            yield lineno, json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            reason = e.msg if isinstance(e, json.JSONDecodeError) else f"not UTF-8: {e.reason}"
            raise error(f"{where}:{lineno}: not JSON ({reason})") from None


def read_jsonl(path: PathLike, *, torn_tail_ok: bool = False,
               error: Callable[[str], Exception] = JsonlError) -> Iterator[tuple[int, Any]]:
    """(line number, value) of each non-blank line of the JSONL file `path`; a malformed line raises `error`
    naming ``file:line`` (see `jsonl_rows`).

    torn_tail_ok: for append-only files that a kill can cut mid-write. Every complete record ends with a newline,
        so whatever follows the last newline is a torn record and is ignored, JSON or not; a bad line before it is
        still an error. Off, a final line without a newline is an ordinary line.

    Lines are split on ``\\n`` only: JSON written with ``ensure_ascii=False`` may hold U+2028 and other characters
    that `str.splitlines` would treat as line ends. The file is read as bytes and each line parsed on its own, so a
    torn tail cut inside a multi-byte character cannot spoil the lines before it.
    """
    data = Path(path).read_bytes()
    if data.startswith(b"\xef\xbb\xbf"):  # a UTF-8 byte-order mark, as some editors save
        data = data[3:]
    lines = data.split(b"\n")
    if torn_tail_ok:
        lines = lines[:-1]  # after a complete write the data ends with "\n" and the last piece is b""
    return jsonl_rows(lines, path, error=error)
