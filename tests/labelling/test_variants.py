"""Round-2 same-content pairs: variants from the synthetic generator, grouped with their source."""

import json

import numpy as np
from PIL import Image

from evoquality.labelling import read_labels
from evoquality.labelling.config import LabelConfig
from evoquality.labelling.dist import Dist
from evoquality.labelling.pool import discover_pool
from evoquality.labelling.runner import run_labelling
from evoquality.labelling.variants import plan_variants


def _photos(folder, n=3):
    folder.mkdir()
    rng = np.random.default_rng(0)
    for k in range(n):
        base = np.linspace(0, 255, 48 * 40 * 3).reshape(48, 40, 3) * (k + 1) / n
        Image.fromarray((base + rng.normal(0, 10, base.shape)).clip(0, 255).astype(np.uint8)).save(folder / f"p{k}.png")
    return folder


def test_plan_is_deterministic_and_grouped(tmp_path):
    pool = discover_pool(_photos(tmp_path / "pool"))
    ext, jobs = plan_variants(pool, tmp_path / "out", 4, seed=1)
    assert len(ext.paths) == 3 + 12 and len(jobs) == 12
    assert ext.variant_groups == ((0, 3, 4, 5, 6), (1, 7, 8, 9, 10), (2, 11, 12, 13, 14))
    assert ext.groups == pool.groups == ()  # the pool's own groups are not merged with the variants
    assert len({(j.source, j.dist_type, j.level) for j in jobs}) == 12
    again, _ = plan_variants(pool, tmp_path / "out", 4, seed=1)
    assert again == ext
    other, _ = plan_variants(pool, tmp_path / "out", 4, seed=2)
    assert other.paths != ext.paths


def test_variants_do_not_depend_on_where_the_pool_lives(tmp_path):
    """The same pool and seed give byte-identical variant files in two run directories (a run's results must not
    depend on its --out path): random distortions are keyed by the source's pixels, not its path."""
    from evoquality.labelling.variants import materialize_variants

    made = []
    for where in ("a", "b"):
        (tmp_path / where).mkdir()
        pool = discover_pool(_photos(tmp_path / where / "pool"))
        _, jobs = plan_variants(pool, tmp_path / where / "variants", 6, seed=3, types=["white_noise", "gaussian_blur"])
        assert materialize_variants(jobs, 10**8, seed=3) == {}
        made.append({(j.source.split("/pool/")[1], j.dist_type, j.level): open(j.path, "rb").read() for j in jobs})
    assert made[0] == made[1] and any(k[1] == "white_noise" for k in made[0])


def test_variant_types_restrict_the_distortions(tmp_path):
    import pytest

    pool = discover_pool(_photos(tmp_path / "pool"))
    _, jobs = plan_variants(pool, tmp_path / "out", 10, seed=1, types=["gaussian_blur", "white_noise"])
    assert {j.dist_type for j in jobs} == {"gaussian_blur", "white_noise"}
    assert len({(j.source, j.dist_type, j.level) for j in jobs}) == 30  # all 2 x 5 combinations per image
    with pytest.raises(ValueError, match="unknown distortion types \\['fog'\\]"):
        plan_variants(pool, tmp_path / "out", 2, seed=1, types=["fog"])
    cfg = dict(model="m", images="i", out="o", pairs=4, variant_pairs=4)
    assert LabelConfig(**cfg, variants=2).variant_type_list() is None
    assert LabelConfig(**cfg, variant_types="jpeg, pixelate").variant_type_list() == ["jpeg", "pixelate"]
    with pytest.raises(ValueError, match="variant_types must be 'all' or names from"):
        LabelConfig(**cfg, variants=2, variant_types="jpeg,fog").validate()
    with pytest.raises(ValueError, match="give only 5 \\(type, level\\) combinations"):
        LabelConfig(**cfg, variants=6, variant_types="jpeg").validate()
    with pytest.raises(ValueError, match="variants and variant_pairs go together"):
        LabelConfig(**cfg).validate()


def test_same_content_pairs_with_variants_end_to_end(tiny_model_dir, tmp_path, scripted):
    pool = _photos(tmp_path / "pool")
    backend = scripted(lambda a, b, rng: "\\boxed{0}")
    cfg = LabelConfig(model=str(tiny_model_dir), images=str(pool), out=str(tmp_path / "r"), pairs=4, votes=2,
                      variants=2, variant_pairs=6, batch_items=4, max_new_tokens=4, progress=False)
    summary = run_labelling(cfg, backend_factory=lambda c, d: backend, dist=Dist())
    made = sorted((tmp_path / "r" / "variants").glob("*.png"))
    assert len(made) + len(summary["variants_failed"]) == 6
    pairs = [json.loads(line) for line in (tmp_path / "r" / "pairs.jsonl").read_text().splitlines()]
    source = lambda p: p.rsplit("/", 1)[1].split("_", 1)[0].replace(".png", "")  # noqa: E731
    idx = {str(pool.resolve() / f"p{k}.png"): f"{k:07d}" for k in range(3)}
    content = lambda p: idx.get(p, source(p))  # noqa: E731
    same = [p for p in pairs if content(p["image_i"]) == content(p["image_j"])]
    assert len(same) >= 6 and len(pairs) <= 10
    assert summary["pairs_labelled"] + summary["pairs_dropped_bad_image"] == len(pairs)
    assert len(read_labels(tmp_path / "r")) == summary["pairs_labelled"]
    # Resuming finds the variants and the votes: nothing is regenerated.
    mtimes = [p.stat().st_mtime_ns for p in made]

    def no_backend(c, d):
        raise AssertionError("nothing left to generate")

    run_labelling(cfg, backend_factory=no_backend, dist=Dist())
    assert [p.stat().st_mtime_ns for p in made] == mtimes


def test_variants_not_made_are_one_warning_and_recorded(tiny_model_dir, tmp_path, scripted, caplog):
    """A flat image is unchanged by blur: its variants are refused, reported in one log line, recorded in full."""
    pool = tmp_path / "pool"
    pool.mkdir()
    for k, value in enumerate((90, 140, 200)):
        Image.fromarray(np.full((40, 40, 3), value, np.uint8)).save(pool / f"flat{k}.png")
    backend = scripted(lambda a, b, rng: "\\boxed{0}")
    cfg = LabelConfig(model=str(tiny_model_dir), images=str(pool), out=str(tmp_path / "r"), pairs=2, votes=2,
                      variants=2, variant_pairs=2, variant_types="gaussian_blur", batch_items=4, max_new_tokens=4,
                      progress=False)
    with caplog.at_level("WARNING", logger="evoquality.labelling.runner"):
        summary = run_labelling(cfg, backend_factory=lambda c, d: backend, dist=Dist())
    lines = [r.getMessage() for r in caplog.records if "variants not made" in r.getMessage()]
    assert len(lines) == 1 and lines[0].startswith("6 of 6 synthetic variants not made")
    assert "leaves" in lines[0] and lines[0].endswith("failed.json")
    assert len(summary["variants_failed"]) == 6
    # The pairs that needed them are dropped, and say why: not made, rather than a missing file.
    assert summary["pairs_dropped_bad_image"] > 0 and summary["bad_images"]
    for path, why in summary["bad_images"].items():
        assert why == "synthetic variant not made: " + summary["variants_failed"][path], why
