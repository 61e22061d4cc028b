"""Stage 1 end to end: sample pairs, vote in batches into the store, merge into labels and a summary.

Work unit: a *batch* of `batch_items` consecutive items (pairs in compare mode, images in score mode). Batch b
always holds the same items and its generation is seeded by (seed, b) alone, so its answers do not depend on which
process runs it, on how many processes there are, or on whether it is re-run after a crash — a resumed run reproduces
exactly the labels of an uninterrupted one (on the same device and software). A batch is done when all its items
have a record; processes split the batches still to do, round-robin.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Callable, Optional, Sequence

from evoquality.labelling.backends import GenerationBackend, GenRequest
from evoquality.labelling.config import LabelConfig
from evoquality.labelling.dist import Dist
from evoquality.labelling.plan import plan_round
from evoquality.labelling.pool import Pool, discover_pool
from evoquality.labelling.store import ConfigMismatch, RoundDir, ShardWriter
from evoquality.labelling.votes import assemble_answers, derive_seed, encode_orders, pair_requests, vote_orders

logger = logging.getLogger(__name__)

BackendFactory = Callable[[LabelConfig, Dist], GenerationBackend]


def batches_of(items: Sequence[int], size: int) -> list[list[int]]:
    return [list(items[s : s + size]) for s in range(0, len(items), size)]


def default_backend_factory(cfg: LabelConfig, dist: Dist) -> GenerationBackend:
    if cfg.backend == "vllm":
        from evoquality.labelling.vllm_backend import VLLMBackend

        return VLLMBackend.from_config(cfg)
    from evoquality.labelling.backends import TransformersBackend
    from evoquality.modeling import load_policy

    policy = load_policy(cfg.model, dtype=cfg.dtype, device=cfg.device or str(dist.device),
                         attn_implementation=cfg.attn_implementation)
    return TransformersBackend(policy, batch_size=cfg.generation_batch_size)


class _BatchImages:
    """The images of the current batch: each read, checked and prepared once by the backend (`prepare_images`)
    however many pairs show it."""

    def __init__(self, pool: Pool, max_pixels: int, backend: GenerationBackend):
        self.pool, self.max_pixels, self.backend, self._prepared = pool, max_pixels, backend, {}

    def load(self, indices: Sequence[int]) -> None:
        paths = [self.pool.paths[idx] for idx in dict.fromkeys(indices)]
        self._prepared = self.backend.prepare_images(paths, max_pixels=self.max_pixels)

    def get(self, idx: int):
        """(image as requests carry it, None) or (None, reason)."""
        prepared = self._prepared[self.pool.paths[idx]]
        return (None, prepared.rejected) if prepared.rejected else (prepared.image, None)

    def warning(self, idx: int) -> str:
        return self._prepared[self.pool.paths[idx]].warning


def _note_warnings(records: dict, item: int, batch_index: int, plan, images: _BatchImages, indices) -> None:
    """Images of this item that decoded with a recovered warning: kept in its record for the summary's count."""
    warned = {plan.pool.paths[x]: images.warning(x) for x in indices if images.warning(x)}
    if warned:
        records[item] = {"item": item, "batch": batch_index, "image_warnings": warned}


def _compare_batch(cfg, plan, batch_ids, images, backend, batch_index) -> list[dict]:
    from evoquality.prompts import compare_messages, parse_choice

    messages = compare_messages()
    records: dict[int, dict] = {}
    requests: list[GenRequest] = []
    slots: list[tuple[int, bool]] = []
    orders = {}
    images.load([x for pid in batch_ids for x in plan.pairs[pid]])
    for pid in batch_ids:
        i, j = plan.pairs[pid]
        (img_i, bad_i), (img_j, bad_j) = images.get(i), images.get(j)
        if bad_i or bad_j:
            bad = {plan.pool.paths[x]: why for x, why in ((i, bad_i), (j, bad_j)) if why}
            records[pid] = {"item": pid, "batch": batch_index, "dropped": "bad image", "bad_images": bad}
            continue
        _note_warnings(records, pid, batch_index, plan, images, (i, j))
        orders[pid] = vote_orders(cfg.seed, pid, cfg.votes, cfg.order)
        for flag, req in pair_requests(messages, img_i, img_j, orders[pid], cfg.seed, pid):
            requests.append(req)
            slots.append((pid, flag))
    texts = _generate(cfg, backend, requests, batch_index)
    by_pair: dict[int, dict] = {}
    for (pid, flag), t in zip(slots, texts):
        by_pair.setdefault(pid, {})[flag] = t
    for pid, swapped in orders.items():
        answers, vote_texts = assemble_answers(swapped, by_pair[pid], parse_choice)
        rec = {**records.get(pid, {}), "item": pid, "batch": batch_index, "orders": encode_orders(swapped),
               "answers": answers}
        if cfg.save_answers:
            rec["texts"] = vote_texts
        records[pid] = rec
    return [records[pid] for pid in batch_ids]


def _score_batch(cfg, plan, batch_ids, images, backend, batch_index) -> list[dict]:
    from evoquality.prompts import parse_score, score_messages

    messages = score_messages()
    records: dict[int, dict] = {}
    requests, slots = [], []
    images.load(batch_ids)
    for idx in batch_ids:
        img, bad = images.get(idx)
        if bad:
            records[idx] = {"item": idx, "batch": batch_index, "dropped": "bad image",
                            "bad_images": {plan.pool.paths[idx]: bad}}
            continue
        _note_warnings(records, idx, batch_index, plan, images, (idx,))
        requests.append(GenRequest(messages, (img,), cfg.votes, derive_seed(cfg.seed, idx, 3)))
        slots.append(idx)
    texts = _generate(cfg, backend, requests, batch_index)
    for idx, t in zip(slots, texts):
        rec = {**records.get(idx, {}), "item": idx, "batch": batch_index, "scores": [parse_score(x) for x in t]}
        if cfg.save_answers:
            rec["texts"] = list(t)
        records[idx] = rec
    return [records[idx] for idx in batch_ids]


def _generate(cfg, backend, requests, batch_index) -> list[list[str]]:
    if not requests:
        return []
    from evoquality.labelling.backends import check_outputs

    out = backend.generate(requests, max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature,
                           batch_seed=derive_seed(cfg.seed, batch_index, 0xBA7C))
    return check_outputs(requests, out, getattr(backend, "name", type(backend).__name__))


def _on_main_then_all(dist: Dist, fn: Callable[[], None]) -> None:
    """Run `fn` on the main process; if it refuses (a ValueError such as ConfigMismatch), every process raises
    instead of the others waiting forever at the next collective."""
    failure, message = None, None
    if dist.is_main:
        try:
            fn()
        except ValueError as e:
            failure, message = e, str(e)
    message = dist.broadcast(message)
    if failure is not None:
        raise failure
    if message is not None:
        raise ValueError(f"the main process refused the round directory: {message}")


def run_labelling(
    cfg: LabelConfig,
    *,
    backend_factory: Optional[BackendFactory] = None,
    dist: Optional[Dist] = None,
) -> Optional[dict]:
    """Label one round into `cfg.out` (resuming it if it holds votes of the same configuration).

    Returns the summary dict on the main process (None on the others). Raises ValueError naming the option at
    fault for a bad configuration, a model directory that is not a VLM checkpoint, or an output directory that
    belongs to a different configuration — all before any generation.
    """
    from evoquality.labelling.merge import merge_round
    from evoquality.modeling import inspect_checkpoint

    cfg.validate()
    inspect_checkpoint(cfg.model)
    if dist is None:
        from evoquality.labelling.dist import from_accelerate

        dist = from_accelerate()
    if cfg.backend == "vllm" and dist.world > 1:
        # Every process would start its own engine on the same GPU; vLLM spreads one engine over GPUs itself.
        raise ValueError("backend 'vllm' runs one engine per job: launch a single process (not accelerate "
                         f"launch with {dist.world} processes)")
    pool = discover_pool(cfg.images)
    variant_jobs = []
    if cfg.variants:
        from evoquality.labelling.variants import materialize_variants, plan_variants

        pool, variant_jobs = plan_variants(pool, cfg.out, cfg.variants, cfg.seed, cfg.variant_type_list())
    plan = plan_round(cfg, pool)
    rd = RoundDir(cfg.out)
    fingerprint = cfg.fingerprint(pool.digest(), len(pool.paths))

    def prepare_round_dir() -> None:
        # A kill between claiming the directory and writing the pairs leaves no pairs file: write it then.
        if rd.claim(fingerprint) or not rd.pairs_file.exists():
            rd.write_pairs(plan.pair_rows())
        elif rd.read_pairs() != plan.pair_rows():
            raise ConfigMismatch(f"out: {cfg.out!r} holds a different pair list than this configuration draws "
                                 "(was it written by another EvoQuality version?); refusing to mix")
        if variant_jobs:
            failed = materialize_variants(variant_jobs, cfg.max_image_pixels, cfg.seed)
            if failed:  # one line, not one per variant: the reasons are recorded in full beside the variants
                path, why = next(iter(failed.items()))
                logger.warning("%d of %d synthetic variants not made (their pairs are dropped), e.g. %s: %s; all "
                               "reasons in %s", len(failed), len(variant_jobs), Path(path).name, why,
                               Path(path).parent / "failed.json")

    _on_main_then_all(dist, prepare_round_dir)
    if not dist.is_main:
        rd.check(fingerprint)

    done = rd.read_records()
    batches = batches_of(plan.items, cfg.batch_items)
    todo = [b for b, ids in enumerate(batches) if any(i not in done for i in ids)]
    # Everyone has read the store before anyone appends: all ranks agree on `todo`.
    dist.barrier()
    mine = todo[dist.rank :: dist.world]
    session = dist.broadcast(time.time_ns())

    n_generated, n_items = 0, 0
    backend = (backend_factory or default_backend_factory)(cfg, dist) if mine else None
    # Throughput counts generation, not model loading.
    started = time.perf_counter()
    if mine:
        run_batch = _compare_batch if cfg.mode == "compare" else _score_batch
        images = _BatchImages(pool, cfg.max_image_pixels, backend)
        total_votes = sum(len(batches[b]) for b in mine) * cfg.votes
        bar = _progress(cfg.progress and dist.is_main, total_votes, f"label[{cfg.mode}]")
        with ShardWriter(rd.shard(dist.rank)) as writer:
            for b in mine:
                recs = run_batch(cfg, plan, batches[b], images, backend, b)
                # The whole batch was re-generated (its RNG stream must be identical); only new items are written.
                new = [r for r in recs if r["item"] not in done]
                writer.append(new)
                n_items += len(new)
                generated = sum(cfg.votes for r in recs if "dropped" not in r)
                n_generated += generated
                # Dropped pairs need no votes: shrink the total so the ETA stays right and the rate counts votes.
                bar.total -= len(recs) * cfg.votes - generated
                bar.update(generated)
        bar.close()
    rd.append_run(dist.rank, {
        "session": session, "rank": dist.rank, "world": dist.world, "batches": len(mine), "items": n_items,
        "generations": n_generated, "seconds": time.perf_counter() - started,
    })
    dist.barrier()
    if not dist.is_main:
        return None
    return merge_round(rd, cfg, plan)


class _NoBar:
    total = 0

    def update(self, n): ...
    def close(self): ...


def _progress(enabled: bool, total: int, desc: str):
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="vote", dynamic_ncols=True)
