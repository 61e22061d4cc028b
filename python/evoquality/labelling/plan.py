"""What a round labels: the pairs it draws from the pool and the items generation runs over (pair ids in compare
mode, images in score mode). The runner executes a plan; the merge reads it back to tally and summarise."""

from __future__ import annotations

from dataclasses import dataclass

from evoquality.labelling.config import LabelConfig
from evoquality.labelling.pool import Pool

# labels.jsonl with all pairs of a pool: beyond this the file (~200 bytes a pair) stops being useful.
MAX_ALL_PAIRS = 5_000_000


@dataclass
class Plan:
    """What a round labels: the pairs (as pool indices) and the items generation runs over."""

    pool: Pool
    pairs: list[tuple[int, int]]
    items: list[int]  # compare: pair ids; score: pool indices of the images to score

    def pair_rows(self) -> list[dict]:
        return [{"pair": k, "image_i": self.pool.paths[i], "image_j": self.pool.paths[j]}
                for k, (i, j) in enumerate(self.pairs)]


def plan_round(cfg: LabelConfig, pool: Pool) -> Plan:
    from evoquality.labelling.pairs import n_distinct_pairs, sample_pairs

    n = len(pool.paths)
    if cfg.mode == "score" and cfg.score_pairs == "all":
        if n_distinct_pairs(n) > MAX_ALL_PAIRS:
            raise ValueError(f"score_pairs='all' over {n} images gives {n_distinct_pairs(n)} pairs, more than "
                             f"{MAX_ALL_PAIRS}; use score_pairs='sampled' with --pairs")
        # Every unordered pair once; canonical order drawn as for sampled pairs.
        pairs = sample_pairs(n, n_distinct_pairs(n), cfg.seed)
    else:
        pairs = sample_pairs(n, cfg.pairs, cfg.seed, groups=pool.groups, n_same_content=cfg.same_content_pairs,
                             variant_groups=pool.variant_groups, n_variant=cfg.variant_pairs)
    if cfg.mode == "compare":
        items = list(range(len(pairs)))
    else:
        items = sorted({x for p in pairs for x in p})
    return Plan(pool, pairs, items)
