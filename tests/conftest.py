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

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

# Public third-party corpora (images, IQA label files) that live beside the checkout, never inside it.
SHARED_DATA = Path(os.environ.get("EVQ_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))


def pytest_configure(config):
    # Registered here rather than in pyproject.toml's marker list, beside the rule that skips it.
    config.addinivalue_line("markers", "vllm: runs a vLLM engine (skipped only where the vllm package is absent: "
                                       "a GPU server with the vllm extra, or a CPU build of vLLM)")


def pytest_collection_modifyitems(config, items):
    """`gpu` tests skip only where no CUDA device exists, `vllm` tests only where vllm is not installed (missing
    hardware or engine, never a bug: an installed vLLM that fails to import fails its tests)."""
    import importlib.util

    from evoquality import _backend

    skips = {}
    if not _backend.cuda_available():
        skips["gpu"] = pytest.mark.skip(reason="needs a CUDA device")
    if importlib.util.find_spec("vllm") is None:
        skips["vllm"] = pytest.mark.skip(reason="needs the vllm package")
    for item in items:
        for keyword, skip in skips.items():
            if item.get_closest_marker(keyword) is not None:
                item.add_marker(skip)


@pytest.fixture
def one_torch_thread():
    """One intra-op thread for the test: on 2 shared cores a second OpenMP thread makes the tiny model many times
    slower, and subprocesses that run with one thread then compute the same numerics as the test itself."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A saved tiny random Qwen2.5-VL checkpoint (seed 0), built once per test session."""
    from evoquality.tiny_model import make_tiny_model

    path = tmp_path_factory.mktemp("tiny-qwen2.5-vl")
    make_tiny_model(path, seed=0)
    return path


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """Where the public test corpora would be (`image-corpus/`, `iqa-labels/`); it may not exist."""
    return SHARED_DATA


@pytest.fixture(scope="session")
def shared_data(shared_data_dir) -> Path:
    """The public test corpora folder; tests using it carry the `corpus` marker and skip where it is absent (set
    EVQ_SHARED_DATA to point elsewhere)."""
    if not shared_data_dir.is_dir():
        pytest.skip(f"public test corpora not found at {shared_data_dir} (set EVQ_SHARED_DATA)")
    return shared_data_dir
