"""IQA test sets as manifests: readers for the standard sets and generic label files, and the synthetic benchmark.

`load_dataset(name, root)` is the one entry point the evaluation runner uses:
- a standard set name or alias (`DATASETS`): its label file under `root`, as distributed;
- ``"manifest"`` / ``"synthetic"``: ``root/manifest.jsonl`` (e.g. written by `build_synthetic_benchmark`);
- anything else is a path to a generic label file (CSV/JSON/JSONL/txt) or a folder of images.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from evoquality.data.datasets import DATASETS, DatasetSpec, dataset_spec, read_dataset
from evoquality.data.generic import read_labels
from evoquality.data.manifest import Header, Manifest, ManifestError, Record, read_manifest

MANIFEST_NAME = "manifest.jsonl"


def load_dataset(name: str, root=None, *, label_file=None, subset: Optional[str] = None, missing: str = "error",
                 **generic) -> Manifest:
    """A checked manifest for `name` (see the module docstring); `generic` goes to `read_labels`."""
    try:
        dataset_spec(name)
        is_standard = True
    except ValueError:
        is_standard = False
    if is_standard:
        if root is None:
            raise ValueError(f"root is required for the standard dataset {name!r} (the folder it was unpacked in)")
        return read_dataset(name, root, label_file=label_file, subset=subset, missing=missing)
    if name in ("manifest", "synthetic"):
        if root is None:
            raise ValueError(f"root is required for {name!r} (the folder holding {MANIFEST_NAME})")
        manifest = read_manifest(Path(root) / MANIFEST_NAME)
    else:
        if not Path(name).exists():
            raise ValueError(f"dataset {name!r} is neither a standard set ({', '.join(sorted(DATASETS))}), "
                             "'manifest'/'synthetic', nor an existing label file or image folder")
        manifest = read_labels(name, root=root, missing=missing, **generic)
    if subset not in (None, "all"):
        splits = sorted({r.split for r in manifest.records if r.split})
        if subset not in splits:
            raise ValueError(f"subset must be 'all' or one of the splits {splits} of {name}, got {subset!r}")
        manifest = manifest.filter(lambda r: r.split == subset, subset, f"outside subset {subset!r}")
    return manifest


__all__ = ["DATASETS", "DatasetSpec", "Header", "MANIFEST_NAME", "Manifest", "ManifestError", "Record",
           "dataset_spec", "load_dataset", "read_dataset", "read_labels", "read_manifest"]
