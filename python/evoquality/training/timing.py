"""Where a training step's time goes: exclusive wall time per phase, accumulated until the optimizer step.

Phases nest (TRL's generation batch builder calls the preprocessing, the generation and the reward): a phase's time
excludes the phases opened inside it, so the phases add up to the step's wall time with nothing counted twice.
On CUDA every boundary synchronises the device first, otherwise asynchronous kernels would be booked to whichever
phase happens to wait for them; that costs a little throughput, so it can be switched off (`sync=False`).
"""

from __future__ import annotations

import contextlib
import time
from collections import defaultdict
from typing import Callable, Iterator, Optional

# The phases of one GRPO step (the trainer is split by phase: sample -> score -> reward -> advantage -> loss -> step), in report order.
PHASES = (
    "preprocess",  # image decode + processor (resize, normalise, patchify) + prompt tokenisation
    "generation",  # rollout sampling (HF generate or vLLM)
    "weight_sync",  # pushing new weights to vLLM
    "reward",  # parsing scores, gathering them across processes, the fidelity kernel
    "advantage",  # group advantages (0 when the fused kernel computes them with the reward)
    "logprob_forward",  # reference/old log-prob forwards and the rest of TRL's batch assembly
    "forward_backward",  # policy forward + loss + backward, per micro-batch
    "optimizer",  # AdamW step (incl. gradient clipping and zeroing)
    "other",  # everything else inside a step (buffer slicing, callbacks)
)
# Phases that do not run the model: what a faster data path or reward kernel can still win.
NON_MODEL_PHASES = ("preprocess", "reward", "advantage", "other")


class PhaseTimer:
    def __init__(self, sync: Optional[Callable[[], None]] = None) -> None:
        self._sync = sync
        self._stack: list[list] = []  # [phase, start, time spent in children]
        self.totals: defaultdict[str, float] = defaultdict(float)

    def _now(self) -> float:
        if self._sync is not None:
            self._sync()
        return time.perf_counter()

    def start(self, name: str) -> None:
        """Open phase `name` (closed by `stop`); for boundaries that are callbacks rather than a code block."""
        if name not in PHASES:
            raise ValueError(f"phase must be one of {PHASES}, got {name!r}")
        self._stack.append([name, self._now(), 0.0])

    def stop(self, name: str) -> None:
        if not self._stack or self._stack[-1][0] != name:
            open_phase = self._stack[-1][0] if self._stack else None
            raise RuntimeError(f"stop({name!r}) but the innermost open phase is {open_phase!r}")
        _, began, children = self._stack.pop()
        elapsed = self._now() - began
        self.totals[name] += elapsed - children
        if self._stack:
            self._stack[-1][2] += elapsed

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        self.start(name)
        try:
            yield
        finally:
            self.stop(name)

    def add(self, name: str, seconds: float) -> None:
        """Book time measured elsewhere (e.g. image decodes in the data loader) to `name`; when it happened inside
        an open phase it is moved out of that phase."""
        if name not in PHASES:
            raise ValueError(f"phase must be one of {PHASES}, got {name!r}")
        self.totals[name] += seconds
        if self._stack:
            self._stack[-1][2] += seconds

    def take(self) -> dict[str, float]:
        """Per-phase seconds since the last call, with `total` and `non_model_share`; resets the totals."""
        out = {name: float(self.totals.get(name, 0.0)) for name in PHASES}
        total = sum(out.values())
        out["total"] = total
        out["non_model_share"] = sum(out[n] for n in NON_MODEL_PHASES) / total if total > 0 else 0.0
        self.totals.clear()
        return out
