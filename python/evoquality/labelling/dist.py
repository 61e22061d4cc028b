"""Process topology for `accelerate launch --num_processes N -m evoquality label ...`.

On a CPU-only machine use ``accelerate launch --multi_gpu --num_processes N`` (accelerate's torchrun launcher; with
``--cpu`` it starts a single process) — `from_accelerate` then forms a gloo group.

Work is split by batch: rank r runs every world-th batch still to do, writes its own shard, and rank 0 merges after
a barrier. Under a plain `python`/`evoquality` call accelerate's state is a single process and every collective
is a no-op.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    device: Any = "cpu"
    barrier: Callable[[], None] = lambda: None
    broadcast: Callable[[Any], Any] = lambda obj: obj  # rank 0's value, on every rank

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def from_accelerate() -> Dist:
    from accelerate import PartialState
    from accelerate.utils import broadcast_object_list

    from evoquality import _backend

    # Without CUDA, accelerate only forms a gloo group when told it runs on CPU; otherwise every process launched by
    # `accelerate launch --multi_gpu --num_processes N` (torchrun) would believe it is alone and all claim rank 0.
    on_cpu = not _backend.cuda_available()
    state = PartialState(cpu=on_cpu)
    device = "cpu" if on_cpu else str(state.device)
    if state.num_processes == 1:
        return Dist(0, 1, device)

    def broadcast(obj):
        box = [obj]
        broadcast_object_list(box, from_process=0)
        return box[0]

    return Dist(state.process_index, state.num_processes, device, state.wait_for_everyone, broadcast)
