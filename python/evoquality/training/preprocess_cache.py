"""Each unique image is preprocessed once per step, not once per rollout and again for the training forward.

TRL feeds the processor the generation batch row by row — every image G times — and then once more to build the
forward pass's `pixel_values` (TRL 1.16: ~2G preprocessings per image per step). `CachedImageProcessor` wraps
the processor's image processor: images stamped with an id (`data.IMAGE_ID_KEY`) are resized/normalised/patchified
once and their rows of `pixel_values` reused; unstamped images pass straight through. The trainer clears the cache at
every generation batch, so memory stays bounded by one batch of unique images.

Patch rows are per image: Qwen2-VL's processor concatenates images along dim 0 and records each image's
(t, h, w) grid, so image k owns rows [sum(prod(grid[:k])), sum(prod(grid[:k+1]))).
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from evoquality.io.pipeline import flatten_images
from evoquality.training.data import IMAGE_ID_KEY

_CACHEABLE_KEYS = {"pixel_values", "image_grid_thw"}


def _to_numpy(x) -> np.ndarray:
    return x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)


class CachedImageProcessor:
    """Wraps an image processor `inner` (callable `inner(images, **kwargs)` -> BatchFeature with `pixel_values`
    (P, D) and `image_grid_thw` (N, 3)); everything else is forwarded to `inner`.

    Counters: `computed` images actually preprocessed, `reused` images served from the cache. With a `timer`
    (`timing.PhaseTimer`) every call is booked under `preprocess`, wherever TRL makes it.
    """

    def __init__(self, inner: Any, timer=None) -> None:
        object.__setattr__(self, "inner", inner)
        object.__setattr__(self, "timer", timer)
        object.__setattr__(self, "_cache", {})
        object.__setattr__(self, "computed", 0)
        object.__setattr__(self, "reused", 0)

    def __getattr__(self, name):  # merge_size, patch_size, get_number_of_image_patches, ...
        if name == "inner":  # not set yet (object being reconstructed): no forwarding loop
            raise AttributeError(name)
        return getattr(self.inner, name)

    def __deepcopy__(self, memo):
        # The processor deep-copies its parts to serialise itself (save_pretrained): what it saves is the wrapped
        # image processor, unchanged; the cache is a run-time detail.
        return copy.deepcopy(self.inner, memo)

    def __setattr__(self, name, value):
        if name in ("computed", "reused"):
            object.__setattr__(self, name, value)
        else:
            setattr(self.inner, name, value)

    def clear(self) -> None:
        self._cache.clear()

    def __call__(self, images=None, *args, **kwargs):
        if self.timer is None:
            return self._call(images, *args, **kwargs)
        with self.timer.phase("preprocess"):
            return self._call(images, *args, **kwargs)

    def _call(self, images, *args, **kwargs):
        from transformers import BatchFeature

        flat = flatten_images(images) if images is not None else []
        ids = [getattr(im, "info", {}).get(IMAGE_ID_KEY) for im in flat]
        if args or not flat or any(i is None for i in ids):
            self.computed += len(flat)
            return self.inner(images, *args, **kwargs)
        return_tensors = kwargs.pop("return_tensors", None)
        # Options that change the output (size, min/max pixels, ...) are part of the key.
        options = tuple(sorted((k, repr(v)) for k, v in kwargs.items()))
        missing = [k for k, i in enumerate(ids) if (i, options) not in self._cache]
        unique_missing = list(dict.fromkeys(ids[k] for k in missing))
        if unique_missing:
            first = {i: next(k for k in missing if ids[k] == i) for i in unique_missing}
            out = self.inner([flat[first[i]] for i in unique_missing], **kwargs)
            if set(out.keys()) != _CACHEABLE_KEYS:
                raise ValueError(
                    f"CachedImageProcessor supports processors returning {sorted(_CACHEABLE_KEYS)}, got "
                    f"{sorted(out.keys())}; pass the trainer `cache_preprocessing=False`"
                )
            pixels, grids = _to_numpy(out["pixel_values"]), _to_numpy(out["image_grid_thw"])
            bounds = np.concatenate([[0], np.cumsum(grids.prod(axis=1))])
            if bounds[-1] != len(pixels):
                raise ValueError(f"pixel_values has {len(pixels)} rows but image_grid_thw accounts for {bounds[-1]}")
            for n, image_id in enumerate(unique_missing):
                self._cache[(image_id, options)] = (pixels[bounds[n] : bounds[n + 1]], grids[n])
            self.computed += len(unique_missing)
        self.reused += len(flat) - len(unique_missing)
        entries = [self._cache[(i, options)] for i in ids]
        data = {
            "pixel_values": np.concatenate([e[0] for e in entries], axis=0),
            "image_grid_thw": np.stack([e[1] for e in entries], axis=0),
        }
        return BatchFeature(data=data, tensor_type=return_tensors)
