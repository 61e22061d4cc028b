"""Process topology for `accelerate launch --num_processes N evoquality label ...`.

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

    state = PartialState()
    if state.num_processes == 1:
        return Dist(0, 1, state.device)

    def broadcast(obj):
        box = [obj]
        broadcast_object_list(box, from_process=0)
        return box[0]

    return Dist(state.process_index, state.num_processes, state.device, state.wait_for_everyone, broadcast)
