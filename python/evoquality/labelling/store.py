"""The round directory: configuration guard, pair list, and the append-only, crash-safe vote store.

Layout::

    round/
      config.json              what the votes depend on; a run with a different configuration refuses to mix
      pairs.jsonl              the sampled pairs {"pair", "image_i", "image_j"} (written once)
      votes/rank-NNNNN.jsonl   append-only records, one JSON object per line, one file per writing process
      runs/rank-NNNNN.jsonl    one line per session of a process: items done, generations, seconds
      labels.jsonl  labels_meta.json  summary.json     rewritten by every merge (derived from the votes)

Durability: a batch's records go out in one ``write`` followed by ``fsync``, so a kill loses at most the batch in
flight. A kill mid-write can leave a torn last line: readers ignore it and the owning writer truncates it before
appending again. A corrupt line anywhere else is real damage and an error. Shard files are never rewritten, so
processes never contend for a file; a resumed run may use a different number of processes (the store is the union
of all shards).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable, Union

from evoquality._files import atomic_write, read_jsonl

CONFIG_FILE = "config.json"
PAIRS_FILE = "pairs.jsonl"
VOTES_DIR = "votes"
RUNS_DIR = "runs"
STORE_VERSION = 1


class ConfigMismatch(ValueError):
    """The output directory holds votes of a different configuration."""


def shard_name(rank: int) -> str:
    return f"rank-{rank:05d}.jsonl"


class RoundDir:
    def __init__(self, path: Union[str, os.PathLike]):
        self.path = Path(path)

    @property
    def config_file(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def pairs_file(self) -> Path:
        return self.path / PAIRS_FILE

    def shard(self, rank: int) -> Path:
        return self.path / VOTES_DIR / shard_name(rank)

    def run_log(self, rank: int) -> Path:
        return self.path / RUNS_DIR / shard_name(rank)

    # -- configuration guard -------------------------------------------------------------------------------------
    def claim(self, fingerprint: dict) -> bool:
        """Create the directory for `fingerprint`, or check that it already belongs to it.

        Returns True when the directory was new. Raises ConfigMismatch naming every differing key otherwise.
        """
        if self.path.exists() and not self.path.is_dir():
            raise ValueError(f"out: {str(self.path)!r} exists and is not a directory")
        if self.config_file.exists():
            self.check(fingerprint)
            return False
        if self.path.is_dir() and any(self.path.iterdir()):
            raise ConfigMismatch(
                f"out: {str(self.path)!r} is not empty and has no {CONFIG_FILE}: refusing to write a round into it"
            )
        (self.path / VOTES_DIR).mkdir(parents=True, exist_ok=True)
        (self.path / RUNS_DIR).mkdir(exist_ok=True)
        atomic_write(
            self.config_file, json.dumps({"version": STORE_VERSION, "fingerprint": fingerprint}, indent=2) + "\n"
        )
        return True

    def check(self, fingerprint: dict) -> None:
        try:
            stored = json.loads(self.config_file.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise ConfigMismatch(f"out: cannot read {self.config_file}: {e}") from None
        if stored.get("version") != STORE_VERSION:
            raise ConfigMismatch(f"out: store version {stored.get('version')!r}, this code writes {STORE_VERSION}")
        old = stored.get("fingerprint", {})
        diffs = [
            f"{key}: stored {old.get(key)!r}, requested {fingerprint.get(key)!r}"
            for key in sorted(set(old) | set(fingerprint))
            if old.get(key) != fingerprint.get(key)
        ]
        if diffs:
            raise ConfigMismatch(
                f"out: {str(self.path)!r} holds votes of a different configuration; refusing to mix them "
                f"(use a new --out, or repeat the original options). Differences: " + "; ".join(diffs)
            )

    # -- pairs ---------------------------------------------------------------------------------------------------
    def write_pairs(self, rows: list[dict]) -> None:
        atomic_write(self.pairs_file, "".join(json.dumps(r) + "\n" for r in rows))

    def read_pairs(self) -> list[dict]:
        return [row for _, row in read_jsonl(self.pairs_file)]

    # -- vote records --------------------------------------------------------------------------------------------
    def shards(self) -> list[Path]:
        return sorted((self.path / VOTES_DIR).glob("rank-*.jsonl"))

    def read_records(self) -> dict[int, dict]:
        """All stored records, keyed by item id (first record wins; a re-run batch writes only missing items)."""
        records: dict[int, dict] = {}
        for shard in self.shards():
            for _, rec in read_jsonl(shard, torn_tail_ok=True):
                records.setdefault(int(rec["item"]), rec)
        return records

    def append_run(self, rank: int, entry: dict) -> None:
        with open(self.run_log(rank), "a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def read_runs(self) -> list[dict]:
        return [rec for p in sorted((self.path / RUNS_DIR).glob("rank-*.jsonl"))
                for _, rec in read_jsonl(p, torn_tail_ok=True)]


class ShardWriter:
    """Appends batches of records to one process's shard file, durably."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        _truncate_torn_tail(path)
        self._f = open(path, "a", encoding="utf-8")

    def append(self, records: Iterable[dict]) -> None:
        payload = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        if payload:
            self._f.write(payload)
            self._f.flush()
            os.fsync(self._f.fileno())

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> "ShardWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _truncate_torn_tail(path: Path) -> None:
    """Cut a torn final line so the next record starts on a fresh line."""
    if not path.exists():
        return
    with open(path, "rb+") as f:
        data = f.read()
        if not data or data.endswith(b"\n"):
            return
        f.truncate(data.rfind(b"\n") + 1)
