"""`evoquality info`: versions and available backends, in the spirit of `python -m torch.utils.collect_env`."""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import platform
import sys

from evoquality import _backend

_PACKAGES = ("evoquality", "torch", "transformers", "trl", "accelerate", "triton", "flash-attn", "vllm",
             "numpy", "scipy", "pillow")


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def collect() -> dict[str, object]:
    info: dict[str, object] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "versions": {name: _version(name) for name in _PACKAGES},
        "backends": _backend.summary(),
    }
    if _backend.cuda_available():
        import torch

        info["cuda_devices"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        info["cuda_runtime"] = torch.version.cuda
    return info


def format_report(info: dict[str, object]) -> str:
    lines = [f"python      {info['python']}", f"platform    {info['platform']}", "", "versions:"]
    for name, ver in info["versions"].items():  # type: ignore[union-attr]
        lines.append(f"  {name:<13} {ver or 'not installed'}")
    lines += ["", "backends:"]
    for key, val in info["backends"].items():  # type: ignore[union-attr]
        if key == "codecs":
            codecs = ", ".join(f"{c}={'yes' if ok else 'no'}" for c, ok in val.items()) or "extension absent"
            lines.append(f"  {'codecs':<22} {codecs}")
        else:
            shown = "yes" if val is True else "no" if val is False else ("-" if val is None else str(val))
            lines.append(f"  {key:<22} {shown}")
    if "cuda_devices" in info:
        lines.append(f"  {'cuda_devices':<22} {', '.join(info['cuda_devices'])}")  # type: ignore[arg-type]
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")


def run(args: argparse.Namespace) -> int:
    info = collect()
    print(json.dumps(info, indent=2) if args.json else format_report(info))
    return 0
