"""Each unique image is decoded and preprocessed once per batch of work, however many prompts show it.

Stage 1 shows an image in both orders of every pair it is in, in several `generate` calls; TRL (stage 2) feeds the
processor the generation batch row by row (every image G times) and once more for the training forward (TRL 1.16:
~2G preprocessings per image per step). `CachedImageProcessor` wraps the processor's image processor and keeps each
image's rows of `pixel_values` under its path. Images are given as paths (stage 1's requests, stage 2's dataset
rows) or, where decoded images are needed (vLLM), as images stamped with their path (`IMAGE_ID_KEY`); anything else
passes straight through. A path is read by `loader` (header checked first, see `io.load.image_input`) and handed to
the inner processor as encoded bytes, so the native pipeline decodes and resizes it in one batch call, with no
Pillow image in between. The owner clears the cache at every batch (a labelling batch, a generation batch), so
memory stays bounded by one batch of unique images.

Patch rows are per image: Qwen2-VL's processor concatenates images along dim 0 and records each image's (t, h, w)
grid, so image k owns rows [sum(prod(grid[:k])), sum(prod(grid[:k+1]))).
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Optional

import numpy as np

from evoquality.io.load import ImageRejected, image_input
from evoquality.io.pipeline import flatten_images

IMAGE_ID_KEY = "evoquality_image_id"  # key in PIL's `Image.info` that names a decoded image by its path
_CACHEABLE_KEYS = {"pixel_values", "image_grid_thw"}
# How the native batch names an image in its messages ("image 3 (5120 bytes): ..."): its place in that one call,
# which says nothing once the outcome is filed under the image's path (and would differ between batches).
_PLACE_IN_BATCH = re.compile(r"^image \d+ \((?:\d+ bytes|path '.*?'|array \d+x\d+)\): ")


def _own_message(message: str) -> str:
    return _PLACE_IN_BATCH.sub("", str(message), count=1)


def image_key(image) -> Optional[str]:
    """The path an image is cached under: the image itself when it is a path, else its stamp (None: not cached)."""
    if isinstance(image, str):
        return image
    return getattr(image, "info", {}).get(IMAGE_ID_KEY)


@dataclass(frozen=True)
class Prepared:
    """What `prepare` found for one image: the warning its decoder recovered from ('' when clean), or why it cannot
    be used ('' when it can)."""

    warning: str = ""
    rejected: str = ""


def _to_numpy(x) -> np.ndarray:
    return x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)


class CachedImageProcessor:
    """Wraps an image processor `inner` (callable `inner(images, **kwargs)` -> BatchFeature with `pixel_values`
    (P, D) and `image_grid_thw` (N, 3)); everything else is forwarded to `inner`.

    loader: path -> what `inner` takes for it (raises `ImageRejected`). Counters: `computed` images actually
    preprocessed, `reused` images served from the cache. With a `timer` (`training.timing.PhaseTimer`) every call is
    booked under `preprocess`, wherever TRL makes it.
    """

    def __init__(self, inner: Any, timer=None, loader: Callable[[str], Any] = image_input) -> None:
        object.__setattr__(self, "inner", inner)
        object.__setattr__(self, "timer", timer)
        object.__setattr__(self, "loader", loader)
        object.__setattr__(self, "_cache", {})
        object.__setattr__(self, "_warnings", {})
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
        self._warnings.clear()

    def fetch_images(self, images):
        """Paths stay paths: this cache reads them (transformers' own fetch would open them with Pillow)."""
        return images

    def prepare(self, paths: Iterable[str], *, loader: Optional[Callable[[str], Any]] = None) -> dict[str, Prepared]:
        """Preprocess the images at `paths` that are not cached yet, in one call of the inner processor (with the
        processor's own options, as its calls from the full processor use), and say for each path whether it can be
        used. A rejection is the loader's (`loader`, default the cache's: header read, size, aspect, format) or a
        body that does not decode; the batch is then retried image by image to find it, so one bad file neither
        fails nor changes the others."""
        paths = list(dict.fromkeys(paths))
        rejected, inputs = {}, {}
        for path in paths:
            if (path, ()) in self._cache:
                continue
            try:
                inputs[path] = (loader or self.loader)(path)
            except ImageRejected as e:
                rejected[path] = str(e)
        if inputs:
            try:
                self._compute(list(inputs), list(inputs.values()), (), {})
            except ValueError:  # the native decoder's errors are ValueErrors: some body failed; find which
                for path, data in inputs.items():
                    try:
                        self._compute([path], [data], (), {})
                    except ValueError as e:
                        rejected[path] = f"unreadable: {type(e).__name__}: {_own_message(e)}"
        return {path: Prepared(rejected=rejected[path]) if path in rejected
                else Prepared(warning=self._warnings.get(path, "")) for path in paths}

    def __call__(self, images=None, *args, **kwargs):
        if self.timer is None:
            return self._call(images, *args, **kwargs)
        with self.timer.phase("preprocess"):
            return self._call(images, *args, **kwargs)

    @staticmethod
    def _options(kwargs: dict) -> tuple:
        # Options that change the output (size, min/max pixels, ...) are part of the key.
        return tuple(sorted((k, repr(v)) for k, v in kwargs.items()))

    def _compute(self, keys: list[str], inputs: list, options: tuple, kwargs: dict) -> None:
        """Preprocess `inputs` in one inner call and cache image n's rows and decoder warning under keys[n]."""
        out = self.inner(inputs, **kwargs)
        if set(out.keys()) != _CACHEABLE_KEYS:
            raise TypeError(
                f"CachedImageProcessor supports processors returning {sorted(_CACHEABLE_KEYS)}, got "
                f"{sorted(out.keys())}; pass the trainer `cache_preprocessing=False`"
            )
        pixels, grids = _to_numpy(out["pixel_values"]), _to_numpy(out["image_grid_thw"])
        bounds = np.concatenate([[0], np.cumsum(grids.prod(axis=1))])
        if bounds[-1] != len(pixels):
            raise RuntimeError(f"pixel_values has {len(pixels)} rows but image_grid_thw accounts for {bounds[-1]}")
        for n, key in enumerate(keys):
            self._cache[(key, options)] = (pixels[bounds[n] : bounds[n + 1]], grids[n])
        for n, warning in getattr(self.inner, "last_warnings", ()):
            self._warnings[keys[n]] = _own_message(warning)
        self.computed += len(keys)

    def _call(self, images, *args, **kwargs):
        from transformers import BatchFeature

        flat = flatten_images(images) if images is not None else []
        keys = [image_key(im) for im in flat]
        if args or not flat or any(k is None for k in keys):
            self.computed += len(flat)
            return self.inner(images, *args, **kwargs)
        return_tensors = kwargs.pop("return_tensors", None)
        options = self._options(kwargs)
        missing = {k: im for k, im in zip(keys, flat) if (k, options) not in self._cache}
        if missing:
            self._compute(list(missing), [self._input(k, im) for k, im in missing.items()], options, kwargs)
        self.reused += len(flat) - len(missing)
        entries = [self._cache[(k, options)] for k in keys]
        data = {
            "pixel_values": np.concatenate([e[0] for e in entries], axis=0),
            "image_grid_thw": np.stack([e[1] for e in entries], axis=0),
        }
        return BatchFeature(data=data, tensor_type=return_tensors)

    def _input(self, key: str, image):
        if not isinstance(image, str):
            return image  # a decoded image stamped with its path
        try:
            return self.loader(key)
        except ImageRejected as e:
            raise ValueError(f"image {key!r} cannot be preprocessed: {e}") from None
