# torchvision shim for this venv only: PyPI's torchvision 0.28.0 is a CUDA build whose _C extension does not load
# beside the CPU torch 2.13.0+cpu, and its import then fails registering fake kernels for ops that were never
# defined ("operator torchvision::nms does not exist"). Defining the two op schemas (no kernels: nothing here calls
# nms) lets torchvision's Python parts (transforms, video processors) import. Runs in every process of the venv,
# vLLM's engine-core subprocess included.
try:
    import torch

    _TORCHVISION_SHIM = torch.library.Library("torchvision", "DEF")
    for _op in ("nms", "qnms"):
        _TORCHVISION_SHIM.define(f"{_op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
except Exception:  # a torch without torch.library, or a torchvision whose _C did load and defined them
    pass
