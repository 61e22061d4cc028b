"""The model path: parse-failure accounting with scripted answers, the API, and `evoquality eval` / `score` end to end
on the tiny random model (its scores are meaningless: assertions are on structure, accounting and files)."""

import json
import re
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

from evoquality import api
from evoquality.cli import main
from evoquality.evaluation import scorers
from evoquality.sampling import Completions

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class _Policy:
    """Stands in for a loaded Policy where only the scripted `sample_completions` and the image checks look at it."""

    model = object()
    processor = SimpleNamespace(image_processor=Qwen2VLImageProcessorPil())
    path = "scripted"


@pytest.fixture
def scripted(monkeypatch):
    """Replace sample_completions with a script: greedy answers and sampled answers keyed by image mean value."""
    calls = []

    def fake(policy, requests, *, n, max_new_tokens, temperature=1.0, do_sample=True, batch_size=8, seed=None):
        calls.append({"n": n, "do_sample": do_sample, "k": len(requests), "seed": seed})
        out = []
        for _messages, images in requests:
            key = tuple(int(np.asarray(im).mean()) for im in images)
            out.append(Completions(texts=fake.answers[(key, do_sample)][:n], token_ids=[[]] * n))
        return out

    fake.answers = {}
    monkeypatch.setattr("evoquality.sampling.sample_completions", fake)
    fake.calls = calls
    return fake


def _img(value):
    return Image.fromarray(np.full((28, 28, 3), value, np.uint8))


def test_model_scorer_counts_parse_failures(scripted, tmp_path):
    scripted.answers = {
        ((10,), False): ["\\boxed{3.25}"], ((10,), True): ["\\boxed{2}", "no box", "\\boxed{4.5}"],
        ((20,), False): ["it is fine"], ((20,), True): ["\\boxed{9}", "\\boxed{1.5}", "\\boxed{x}"],
        ((30,), False): ["\\boxed{1}"], ((30,), True): ["none", "none", "none"],
    }
    (tmp_path / "broken.png").write_bytes(b"not a png")
    images = [_img(10), _img(20), str(tmp_path / "broken.png"), _img(30)]
    s = scorers.ModelScorer(_Policy(), n_samples=3, batch_size=2)
    res = s.score(images)
    np.testing.assert_array_equal(res.greedy, [3.25, np.nan, np.nan, 1.0])
    # 9 is clipped to 5 (prompts.parse_score); unparsed samples are left out of the mean, not replaced
    np.testing.assert_array_equal(res.sampled, [3.25, 3.25, np.nan, np.nan])
    np.testing.assert_array_equal(res.n_parsed, [2, 2, 0, 0])
    assert res.failures == {"greedy answer unparsed": 1, "sampled answers unparsed": 5,
                            "images with no parsed sample": 1, "image rejected: unreadable": 1}
    rates = scorers.failure_rates(res, 4)
    assert rates == {"images_rejected": 1, "greedy": pytest.approx(1 / 3), "sampled": pytest.approx(5 / 9)}
    # one greedy + one sampled call per batch, batches of 2 images (the broken one is dropped before the call)
    assert [(c["n"], c["do_sample"], c["k"]) for c in scripted.calls] == [(1, False, 2), (3, True, 2),
                                                                          (1, False, 1), (3, True, 1)]
    mean_only = scorers.ModelScorer(_Policy(), n_samples=3, mode="mean").score(images[:2])
    assert mean_only.greedy is None and np.array_equal(mean_only.scores, [3.25, 3.25])
    assert "greedy" not in scorers.failure_rates(mean_only, 2)


def test_model_scorer_arguments():
    with pytest.raises(ValueError, match="mode must be 'greedy' or 'mean'"):
        scorers.ModelScorer(_Policy(), mode="median")
    with pytest.raises(ValueError, match="mode='mean' needs n_samples >= 1"):
        scorers.ModelScorer(_Policy(), mode="mean", n_samples=0)


def test_compare_balances_order_and_maps_votes_back(scripted):
    from evoquality.labelling.votes import vote_orders

    a, b = _img(200), _img(50)
    # (a, b) shown: "0" = first = a. (b, a) shown: "1" = second = a, and one answer that does not parse.
    scripted.answers = {((200, 50), True): ["\\boxed{0}"] * 5, ((50, 200), True): ["\\boxed{2}"] + ["\\boxed{1}"] * 4}
    pref = api.compare(a, b, model=_Policy(), votes=5)
    assert pref == api.Preference(winner="a", votes_a=4, votes_b=0, invalid=1)
    assert pref.p_a == 1.0
    # Stage 1's balanced design: 2 + 3 votes, the odd one's order from the seed; one request per order.
    n_swapped = int(vote_orders(0, 0, 5).sum())
    assert sorted((c["n"], c["k"]) for c in scripted.calls) == sorted([(5 - n_swapped, 1), (n_swapped, 1)])
    # With an even K both orders are one seeded call: two rows of one random stream, never one seed reused.
    scripted.calls.clear()
    api.compare(a, b, model=_Policy(), votes=4, seed=7)
    assert [(c["n"], c["k"]) for c in scripted.calls] == [(2, 2)] and scripted.calls[0]["seed"] is not None
    scripted.answers = {((200, 50), True): ["none"], ((50, 200), True): ["none"]}
    tie = api.compare([a], [b], model=_Policy(), votes=1)
    assert tie == [api.Preference("tie", 0, 0, 1)] and np.isnan(tie[0].p_a)
    with pytest.raises(ValueError, match="votes must be >= 1"):
        api.compare(a, b, model=_Policy(), votes=0)
    with pytest.raises(ValueError, match="same length"):
        api.compare([a], [a, b], model=_Policy())


def test_api_score_classical_and_errors(tmp_path):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    piqe = api.create_scorer("piqe")
    assert piqe.higher_better is False and api.create_scorer("psnr").higher_better is True
    out = api.score([img, Image.fromarray(img)], model="piqe")
    assert out.shape == (2,) and out[0] == out[1] and 0 <= out[0] <= 100
    # identical images: the capped PSNR, half the smallest 8-bit error over 40*40*3 values
    assert api.score(img, model="psnr", refs=img)[0] == pytest.approx(10 * np.log10(255**2 * 2 * 4800), abs=1e-12)
    other = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    # array references, changing between images (the decoded-reference cache must not mix them up)
    two = api.score([img, img, other], model="psnr", refs=[img, other, other])
    assert two[0] == two[2] and two[1] < two[0]
    with pytest.raises(ValueError, match="refs must give one reference per image"):
        api.score([img], model="ssim")
    with pytest.raises(ValueError, match="model is required"):
        api.score([img])
    with pytest.raises(ValueError, match="or a checkpoint directory, got 'brisque'"):
        api.create_scorer("brisque")


def _kadid_fixture(root):
    rng = np.random.default_rng(1)
    (root / "images").mkdir(parents=True)
    lines = ["dist_img,ref_img,dmos,var"]
    for ref in ("I01", "I02"):
        base = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
        Image.fromarray(base).save(root / "images" / f"{ref}.png")
        for level in (1, 2, 3):
            noisy = np.clip(base + rng.normal(0, 8 * level, base.shape), 0, 255).astype(np.uint8)
            Image.fromarray(noisy).save(root / "images" / f"{ref}_01_0{level}.png")
            lines.append(f"{ref}_01_0{level}.png,{ref}.png,{5 - level - rng.random():.3f},0.1")
    (root / "dmos.csv").write_text("\n".join(lines) + "\n")


def test_eval_end_to_end_on_tiny_model(tiny_model_dir, tmp_path):
    from evoquality.data.synthetic import build_synthetic_benchmark

    build_synthetic_benchmark(tmp_path / "syn", ["chelsea", "coffee"], types=("jpeg", "white_noise"), levels=(1, 3),
                              size=32)
    _kadid_fixture(tmp_path / "kadid")
    out = tmp_path / "out"
    rc = main(["eval", "--model", str(tiny_model_dir), "--dataset", "synthetic", "--root", str(tmp_path / "syn"),
               "--dataset", "kadid10k", "--root", str(tmp_path / "kadid"), "--samples", "2", "--max-new-tokens", "6",
               "--bootstrap", "20", "--no-progress", "--out", str(out)])
    assert rc == 0
    results = json.loads((out / "results.json").read_text())
    syn, kadid = results["datasets"]
    assert (syn["name"], syn["n"], kadid["name"], kadid["n"]) == ("synthetic", 10, "kadid10k", 6)
    assert list(syn["rows"]) == ["model greedy", "model mean@2", "PSNR (oracle)", "SSIM (oracle)", "PIQE"]
    for entry in (syn, kadid):
        greedy, mean = entry["rows"]["model greedy"], entry["rows"]["model mean@2"]
        rates = greedy["parse_failure_rate"]
        assert rates == mean["parse_failure_rate"] and rates["images_rejected"] == 0
        # every unparsed greedy answer is a missing score, never a substitute
        assert greedy["n_failed"] == round(rates["greedy"] * entry["n"])
        assert mean["n_failed"] == entry["n"] if rates["sampled"] == 1.0 else mean["n_failed"] < entry["n"]
    assert syn["rows"]["PSNR (oracle)"]["l_test"] == pytest.approx(1.0, abs=1e-12)
    assert syn["rows"]["PSNR (oracle)"]["p_test"] == 1.0 and syn["rows"]["PSNR (oracle)"]["d_test"] == 1.0
    k = kadid["rows"]["PSNR (oracle)"]
    assert set(k) >= {"plcc", "plcc_logistic", "srcc", "krcc", "pairwise", "ci95", "logistic_fit"}
    assert [w["scorer"] for w in results["wavg"]][-3:] == ["PSNR (oracle)", "SSIM (oracle)", "PIQE"]
    md = (out / "results.md").read_text()
    assert "| kadid10k | all | " in md and "| WAVG | 1 sets | 6 | PIQE |" in md
    # the model's rows are printed even when nothing parsed (n = the items actually scored)
    n_scored = kadid["rows"]["model greedy"]["n_scored"]
    assert f"| kadid10k | all | {n_scored} | model greedy |" in md and "| WAVG | 1 sets | 6 | model greedy |" in md
    n_syn = syn["rows"]["model greedy"]["n_scored"]
    assert f"| synthetic | 2 refs x 2 types x 2 levels, 32x32, seed 0 | {n_syn} | model greedy |" in md
    assert "| synthetic | 2 refs x 2 types x 2 levels, 32x32, seed 0 | 10 | PSNR (oracle) | 1.000 | 1.000 |" in md
    for name in ("synthetic", "kadid10k"):
        with Image.open(out / f"scatter_{name}.png") as im:
            assert im.size == (560, 420)
        lines = (out / f"predictions_{name}.jsonl").read_text().splitlines()
        assert len(lines) == {"synthetic": 10, "kadid10k": 6}[name]
        assert {"image", "model greedy", "model mean@2", "n_parsed", "piqe"} <= set(json.loads(lines[0]))


def test_eval_classical_only_and_argument_errors(tmp_path, capsys):
    _kadid_fixture(tmp_path / "kadid")
    out = tmp_path / "out"
    assert main(["eval", "--dataset", "kadid", "--root", str(tmp_path / "kadid"), "--reference", "piqe",
                 "--bootstrap", "0", "--no-progress", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert list(results["datasets"][0]["rows"]) == ["PIQE"] and results["settings"]["model"] is None
    # synthetic without --root: the default benchmark is built under OUT/synthetic first
    assert main(["eval", "--dataset", "synthetic", "--synthetic-size", "32", "--reference", "psnr", "--bootstrap", "0",
                 "--no-progress", "--out", str(out)]) == 0
    entry = json.loads((out / "results.json").read_text())["datasets"][0]
    assert entry["subset"].startswith("8 refs x 5 types x 5 levels, 32x32")
    assert (out / "synthetic" / "manifest.jsonl").is_file()
    assert entry["rows"]["PSNR (oracle)"]["p_test"] == 1.0
    with pytest.raises(SystemExit):
        main(["eval", "--root", "x", "--dataset", "kadid"])  # --root before any --dataset
    capsys.readouterr()
    for argv, message in (
        (["--dataset", "kadid", "--root", str(tmp_path), "--reference", "piqe"], r"--dataset kadid: .*dmos\.csv"),
        (["--dataset", "konig", "--reference", "piqe"], "--dataset konig: dataset 'konig' is neither a standard set"),
        (["--dataset", "kadid", "--root", str(tmp_path / "kadid"), "--reference", "niqe"], "unknown scorer"),
        (["--dataset", "kadid", "--root", str(tmp_path / "kadid"), "--reference", "none"], "nothing to evaluate"),
    ):
        assert main(["eval", *argv]) == 2
        assert re.match(f"evoquality eval: error: .*{message}", capsys.readouterr().err)


def test_score_cli_piqe(tmp_path, capsys):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8 truncated")
    assert main(["score", "--metric", "piqe", str(tmp_path / "a.png"), str(tmp_path / "bad.jpg")]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines[0].startswith(f"{tmp_path / 'a.png'}\t") and lines[1] == f"{tmp_path / 'bad.jpg'}\tnan"
    assert "image rejected: unreadable 1" in captured.err
    assert main(["score", "--metric", "piqe", "--json", str(tmp_path / "bad.jpg")]) == 1
    assert json.loads(capsys.readouterr().out) == {"image": str(tmp_path / "bad.jpg"), "score": None,
                                                   "higher_better": False}


def test_score_cli_tiny_model(tiny_model_dir, tmp_path, capsys):
    Image.fromarray(np.zeros((28, 28, 3), np.uint8)).save(tmp_path / "a.png")
    rc = main(["score", "--model", str(tiny_model_dir), "--max-new-tokens", "4", "--json", str(tmp_path / "a.png")])
    line = json.loads(capsys.readouterr().out)
    assert line["higher_better"] is True and line["image"] == str(tmp_path / "a.png")
    assert rc == (0 if line["score"] is not None else 1)


def test_api_with_tiny_model(tiny_model_dir):
    scorer = api.create_scorer(tiny_model_dir, mode="mean", n_samples=2, max_new_tokens=4)
    assert scorer.higher_better is True and scorer.mode == "mean"
    res = scorer.score([_img(10), _img(90)])
    assert res.scores.shape == (2,) and res.greedy is None
    assert sum(res.n_parsed) + res.failures["sampled answers unparsed"] == 4
    assert (np.isnan(res.scores) == (res.n_parsed == 0)).all()  # a score exactly where some sample parsed
    scores = api.score(_img(10), model=tiny_model_dir, max_new_tokens=4)
    assert scores.shape == (1,) and (np.isnan(scores[0]) or 1.0 <= scores[0] <= 5.0)
    pref = api.compare(_img(200), _img(50), model=tiny_model_dir, votes=3, max_new_tokens=4)
    assert pref.votes_a + pref.votes_b + pref.invalid == 3 and pref.winner in ("a", "b", "tie")
    api.clear_cache()


@pytest.mark.gpu
def test_eval_and_compare_on_cuda(tiny_model_dir, tmp_path):
    """The device path: policy on CUDA, batched greedy + sampled scoring, and compare (structure only)."""
    out = tmp_path / "out"
    assert main(["eval", "--model", str(tiny_model_dir), "--device", "cuda", "--dataset", "synthetic",
                 "--synthetic-size", "32", "--samples", "4", "--max-new-tokens", "8", "--bootstrap", "10",
                 "--no-progress", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["settings"]["device"].startswith("cuda")
    rows = results["datasets"][0]["rows"]
    assert {"model greedy", "model mean@4"} <= set(rows) and (out / "scatter_synthetic.png").is_file()
    pref = api.compare(_img(200), _img(50), model=tiny_model_dir, votes=4, max_new_tokens=8, device="cuda")
    assert pref.votes_a + pref.votes_b + pref.invalid == 4
    api.clear_cache()
