"""Benchmark: the fidelity reward — providers `torch` (the PyTorch reference, the CPU path), `triton` (the compiled
kernel, CUDA) and `loop` (the ancestor's per-pair Python loop, the anchor).

    .venv/bin/python benchmarks/bench_fidelity.py [--images 256 --rollouts 32 --partners 8] [--out DIR]
    python benchmarks/bench_fidelity.py --device cuda --fused --partners all     # the GPU timings (gpu_kernels.py)

The ancestor (VisualQuality-R1, as docs/method.md describes it) computes the reward in a triple Python loop over
(image, rollout, partner) on 0-d tensors: about ten tiny tensor ops per triple and a host sync (`.item()`) per value.
`ancestor_fidelity_loop` reproduces that faithfully (same formula, Eq. 2-3, all samples valid: the ancestor
substitutes random scores for parse failures, so it has no invalid samples). Both paths are checked to agree before
anything is timed. Target on CPU at B = 256, G = 32, 8 partners: reference >= 1000x faster than the loop.
--fused times the fused fidelity + group advantages (`fidelity_advantages`, what a training step calls; the loop
has no fused form, so it stays the reward loop). On CUDA the loop (~10 launches and a host sync per triple) is
timed on a subset of images and extrapolated linearly in the triple count; such rows say "extrapolated".
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _rows  # noqa: E402
from _timing import time_fn  # noqa: E402

from evoquality import _backend  # noqa: E402
from evoquality.ops.fidelity import GAMMA, fidelity_advantages, fidelity_reward  # noqa: E402
from evoquality.ops.partners import Partners  # noqa: E402

PROVIDERS = ("torch", "triton", "loop")
ANCHOR = "loop"


def make_case(b: int, g: int, partners: int, *, device="cpu", seed: int = 0):
    """Scores (B, G) in [1, 5] rounded to 2 decimals (as parsed), each image with `partners` random partners."""
    gen = torch.Generator().manual_seed(seed)
    scores = torch.round((1 + 4 * torch.rand(b, g, generator=gen)) * 100) / 100
    partners = min(partners, b - 1)
    # a random regular pairing: image i is paired with i + 1, ..., i + partners/2 (mod B), both directions
    half = max(1, partners // 2) if partners > 1 else 1
    pairs = [(i, (i + d) % b) for d in range(1, half + 1) for i in range(b)] if b > 1 else []
    if partners == 1:  # a perfect matching (B even): one partner each
        pairs = [(i, i + 1) for i in range(0, b - 1, 2)]
    elif partners >= b - 1:  # all pairs
        pairs = [(i, j) for i in range(b) for j in range(i + 1, b)]
    seen, unique = set(), []
    for i, j in pairs:
        key = (min(i, j), max(i, j))
        if i != j and key not in seen:
            seen.add(key)
            unique.append((i, j))
    labels = torch.rand(len(unique), generator=gen)
    labels = torch.where(labels < 0.6, torch.round(labels / 0.6), labels)  # mostly hard labels, some soft
    p = Partners.from_pairs(torch.tensor(unique, dtype=torch.int64).reshape(-1, 2), labels, num_images=b)
    return scores.to(device), p.to(device)


def partner_lists(partners: Partners) -> list[list[tuple[int, float]]]:
    indptr, indices, p_star = partners.indptr.tolist(), partners.indices.tolist(), partners.p_star.tolist()
    spans = [slice(indptr[i], indptr[i + 1]) for i in range(len(indptr) - 1)]
    return [list(zip(indices[span], p_star[span])) for span in spans]


def ancestor_stats(scores: torch.Tensor):
    """The ancestor's per-image statistics: one mean and one (unbiased, as Eq. 2 intends) variance op per image."""
    b = scores.shape[0]
    return [scores[i].mean() for i in range(b)], [scores[i].var() for i in range(b)]


def ancestor_fidelity_loop(scores: torch.Tensor, lists, gamma: float = GAMMA, images=None, stats=None):
    """The ancestor's reward loop: per image, per rollout, per partner, 0-d tensor ops and one `.item()` each.

    images: the image indices to score (None: all); stats: `ancestor_stats(scores)` (None: computed here).
    Returns a list of reward lists, one per scored image.
    """
    b, g = scores.shape
    mu, var = ancestor_stats(scores) if stats is None else stats
    out = []
    for i in range(b) if images is None else images:
        rewards = []
        for k in range(g):
            q = scores[i, k]
            total = 0.0
            for j, label in lists[i]:
                p_star = torch.tensor(label, device=scores.device)
                denom = torch.sqrt(var[i] + var[j] + gamma)
                z = (q - mu[j]) / denom
                p = 0.5 * (1.0 + torch.erf(z / math.sqrt(2.0)))
                f = torch.sqrt(p_star * p) + torch.sqrt((1.0 - p_star) * (1.0 - p))
                total += f.item()  # a host sync per value
            rewards.append(total / len(lists[i]) if lists[i] else float("nan"))
        out.append(rewards)
    return out


def loop_timing_on_subset(scores, partners, lists, *, max_triples: int, device) -> dict:
    """Time the ancestor loop: its statistics pass over all images (measured), plus its triple loop on the first
    images covering about `max_triples` (image, rollout, partner) triples, extrapolated linearly in the triple
    count (the loop's cost is per triple). `extrapolated` says whether the triple part was scaled up."""
    b, g = scores.shape
    counts = partners.indptr.diff().tolist()
    images, triples = [], 0
    for i in range(b):
        if triples >= max_triples:
            break
        images.append(i)
        triples += g * counts[i]
    total_triples = g * sum(counts)
    stats_t = time_fn(lambda: ancestor_stats(scores), device=device, warmup=1, reps=3, max_seconds=5.0)
    stats = ancestor_stats(scores)
    loop_t = time_fn(lambda: ancestor_fidelity_loop(scores, lists, images=images, stats=stats), device=device,
                     warmup=0, reps=3, max_seconds=10.0)
    factor = total_triples / max(triples, 1)
    out = {k: stats_t[k] + loop_t[k] * factor for k in ("p20_s", "p50_s", "p80_s")}
    return {**out, "reps": loop_t["reps"], "stats_p50_s": stats_t["p50_s"], "measured_triples": triples,
            "total_triples": total_triples, "extrapolated": triples < total_triples}


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=256)
    ap.add_argument("--rollouts", type=int, default=32)
    ap.add_argument("--partners", default="8", help="partners per image, or 'all'")
    ap.add_argument("--fused", action="store_true", help="time fidelity_advantages (reward + group advantages)")
    ap.add_argument("--loop-triples", type=int, default=None,
                    help="time the loop on about this many (image, rollout, partner) triples and extrapolate "
                         "(default: all of them)")
    _rows.add_kernel_arguments(ap, PROVIDERS, reps=20)
    return ap


def check_agreement(scores: torch.Tensor, partners: Partners, lists, max_triples: int = 4096) -> float:
    """Max |loop - reference| (float64, on CPU) over the first images covering about `max_triples` triples.

    With many partners (all pairs at B = 1024) one image alone is G x 1023 triples: fewer rollouts are checked then
    (both paths see the same sliced scores, so they must still agree), keeping the check to about a second."""
    counts = partners.indptr.diff().tolist()
    g = max(2, min(scores.shape[1], max_triples // max(counts[0], 1)))
    scores, partners = scores[:, :g].double().cpu(), partners.to("cpu")
    images, triples = [], 0
    for i in range(scores.shape[0]):
        if images and triples >= max_triples:
            break
        images.append(i)
        triples += scores.shape[1] * counts[i]
    loop_vals = torch.tensor(ancestor_fidelity_loop(scores, lists, images=images), dtype=torch.float64)
    with _backend.force_provider("torch"):
        ref_vals = fidelity_reward(scores, partners)[images]
    return float((loop_vals - ref_vals).abs().max())


def run(argv: list[str] | None = None) -> list[dict]:
    args = build_parser().parse_args(argv)
    providers, explicit = _rows.providers_of(args, PROVIDERS)
    torch.set_num_threads(args.threads)
    b, g = args.images, args.rollouts
    n_partners = b - 1 if args.partners == "all" else int(args.partners)
    scores, partners = make_case(b, g, n_partners)
    scores, partners = scores.to(args.device), partners.to(args.device)
    lists = partner_lists(partners) if "loop" in providers else None
    if lists is not None:  # agreement first: the loop and the reference compute the same rewards
        agree = check_agreement(scores, partners, lists)
        if not agree < 1e-12:
            raise SystemExit(f"the loop and the reference disagree by {agree:.3g}: fix before timing")
    op_fn = fidelity_advantages if args.fused else fidelity_reward

    def timer(provider):
        return _rows.provider_timer(lambda: op_fn(scores, partners), provider, args)

    total = g * int(partners.indices.numel())
    loop: dict = {}

    def time_loop():
        loop.update(loop_timing_on_subset(scores, partners, lists, max_triples=args.loop_triples or total,
                                          device=args.device))
        return loop

    notes = {"torch": "target >= 1000x the loop" if not args.fused and args.device == "cpu" else ""}
    rows = _rows.compare("fidelity_advantages" if args.fused else "fidelity_reward",
                         f"B={b} G={g} partners={args.partners}",
                         {"torch": timer("torch"), "triton": timer("triton"), "loop": time_loop},
                         providers=providers, explicit=explicit, device=args.device, anchor=ANCHOR, work=b * g,
                         unit="rewards/s", notes=notes)
    if loop.get("extrapolated"):
        next(r for r in rows if r["provider"] == "loop")["note"] = (
            f"extrapolated from {loop['measured_triples']} of {loop['total_triples']} triples")
    _rows.stamp(rows, args.device)
    _rows.save(args.out, "bench_fidelity", rows, loop=loop or None)
    return rows


def main(argv=None) -> int:
    return _rows.main_of(run, argv)


if __name__ == "__main__":
    sys.exit(main())
