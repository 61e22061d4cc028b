"""Test configuration. The environment variables below must be set before torch, transformers or any kernel
module is imported: TRITON_INTERPRET routes Triton kernels through the CPU interpreter, the HF flags keep every
test offline."""

import os

# On a GPU machine the CUDA-marked tests should exercise compiled kernels: the GPU suite sets EVQ_COMPILED_TRITON=1
# (the interpreter cannot run kernels on CUDA tensors there).
if os.environ.get("EVQ_COMPILED_TRITON") != "1":
    os.environ["TRITON_INTERPRET"] = "1"
for _name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ[_name] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# One intra-op thread: the tiny models are far too small to gain from two, and two threads on two shared cores
# (CI, or several test processes) thrash — a 32-token generate measured 3.65 s with 2 threads, 0.12 s with 1.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402


def pytest_collection_modifyitems(config, items):
    """`gpu` tests skip only where no CUDA device exists (missing hardware, never a bug)."""
    from evoquality import _backend

    if _backend.cuda_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A saved tiny random Qwen2.5-VL checkpoint (seed 0), built once per test session."""
    from evoquality.tiny_model import make_tiny_model

    path = tmp_path_factory.mktemp("tiny-qwen2.5-vl")
    make_tiny_model(path, seed=0)
    return path
