import numpy as np
import pytest

from evoquality.training.sampler import PairAwareSampler, pack_pairs


def _check_batches(batches, pairs, u):
    pair_set = {tuple(sorted(p)) for p in pairs.tolist()}
    for b in batches:
        assert len(b) == u and len(set(b)) == u  # distinct images, exactly U
        for k in range(0, u, 2):  # laid out as whole pairs
            assert tuple(sorted((b[k], b[k + 1]))) in pair_set


def test_pack_pairs_whole_disjoint_pairs():
    rng = np.random.default_rng(0)
    n = 30
    pairs = np.array([rng.choice(n, 2, replace=False) for _ in range(200)])
    batches = pack_pairs(pairs, 8, rng.permutation(len(pairs)))
    assert len(batches) >= 40
    _check_batches(batches, pairs, 8)


def test_pack_pairs_defers_overlapping_pairs():
    pairs = np.array([[0, 1], [1, 2], [3, 4], [2, 5]])
    # [1, 2] shares image 1 with the first batch: it waits, then opens the second batch; [2, 5] shares image 2 with
    # it and is left over (drop_last).
    assert pack_pairs(pairs, 4) == [[0, 1, 3, 4]]
    assert pack_pairs(pairs, 2) == [[0, 1], [1, 2], [3, 4], [2, 5]]


def test_sampler_layout_matches_repeat_sampler():
    pairs = np.array([[0, 1], [2, 3], [4, 5], [6, 7], [1, 2]])
    s = PairAwareSampler(pairs, images_per_batch=4, num_generations=3, repeat_count=2, seed=1)
    seq = list(s)
    assert len(seq) == len(s)
    chunk = 4 * 3 * 2
    for start in range(0, len(seq), chunk):
        block = seq[start : start + chunk]
        first, second = block[: chunk // 2], block[chunk // 2 :]
        assert first == second  # the generation batch is replayed repeat_count times
        groups = [first[k : k + 3] for k in range(0, len(first), 3)]
        assert all(len(set(g)) == 1 for g in groups)  # G consecutive copies = one rollout group
        _check_batches([[g[0] for g in groups]], pairs, 4)


def test_sampler_same_seed_same_order_on_every_process():
    pairs = np.arange(40).reshape(20, 2)
    a = PairAwareSampler(pairs, images_per_batch=4, num_generations=2, seed=5)
    b = PairAwareSampler(pairs, images_per_batch=4, num_generations=2, seed=5)
    assert list(a) == list(b)
    assert list(a) != list(PairAwareSampler(pairs, images_per_batch=4, num_generations=2, seed=6))


def test_sampler_errors_name_the_argument():
    with pytest.raises(ValueError, match="images_per_batch must be an even number"):
        PairAwareSampler(np.array([[0, 1]]), images_per_batch=3, num_generations=2)
    with pytest.raises(ValueError, match="cannot fill one batch of images_per_batch=4"):
        PairAwareSampler(np.array([[0, 1]]), images_per_batch=4, num_generations=2)
    with pytest.raises(ValueError, match="pairs must have shape"):
        PairAwareSampler(np.zeros((0, 2)), images_per_batch=2, num_generations=2)


def test_every_pass_has_the_announced_length_even_when_shuffling_packs_fewer_batches():
    # One batch of 8 images exists only for a lucky order (four disjoint pairs first); most shuffles pack none.
    pairs = np.array([[0, 1], [2, 3], [4, 5], [6, 7], [1, 2], [5, 6]])
    s = PairAwareSampler(pairs, images_per_batch=8, num_generations=2, seed=0)
    for _ in range(5):
        seq = list(s)
        assert len(seq) == len(s) == 16
        assert sorted(set(seq)) == list(range(8))


def test_each_epoch_has_its_own_order_and_a_resumed_sampler_replays_it():
    pairs = np.arange(80).reshape(40, 2)
    kw = dict(images_per_batch=4, num_generations=1, seed=3)
    fresh = PairAwareSampler(pairs, **kw)
    epoch0, epoch1 = list(fresh), list(fresh)  # plain iteration advances the pass
    assert epoch0 != epoch1
    # A run resumed in epoch 1 builds a new sampler; the Trainer calls set_epoch(1) before iterating.
    resumed = PairAwareSampler(pairs, **kw)
    resumed.set_epoch(1)
    assert list(resumed) == epoch1
    resumed.set_epoch(0)
    assert list(resumed) == epoch0


def test_accelerate_dataloader_forwards_set_epoch_to_the_pair_sampler():
    # accelerate wraps the sampler in a BatchSampler inside its DataLoaderShard; the Trainer's set_epoch must
    # reach it, and the loader then yields that epoch's pass.
    from accelerate import Accelerator
    from torch.utils.data import DataLoader

    pairs = np.arange(16).reshape(8, 2)
    kw = dict(images_per_batch=4, num_generations=1, seed=0)
    sampler = PairAwareSampler(pairs, **kw)
    loader = Accelerator(cpu=True).prepare(DataLoader(list(range(16)), batch_size=4, sampler=sampler))
    loader.set_epoch(2)
    yielded = [int(x) for batch in loader for x in batch]
    assert yielded == [i for b in PairAwareSampler(pairs, **kw).batches(epoch=2) for i in b]
    assert yielded != [i for b in PairAwareSampler(pairs, **kw).batches(epoch=0) for i in b]


def test_pairs_the_packer_cannot_place_are_counted_per_pass_and_warned(caplog):
    # A hub: image 0 is in 12 of 16 pairs, but a pass has only 4 batches of 4 distinct images.
    hub = [[0, k] for k in range(1, 13)]
    rest = [[13, 14], [15, 16], [17, 18], [19, 20]]
    s = PairAwareSampler(np.array(hub + rest), images_per_batch=4, num_generations=1, seed=0)
    with caplog.at_level("WARNING", logger="evoquality.training.sampler"):
        seq = list(s)
    (record,) = s.passes
    used = {tuple(sorted(seq[k : k + 2])) for k in range(0, len(seq), 2)}
    assert record == {"epoch": 0, "pairs": 16, "pairs_used": len(used), "pairs_dropped": 16 - len(used)}
    assert record["pairs_dropped"] >= 8  # at most 4 hub pairs fit in 4 batches
    assert "could not be packed" in caplog.text and f"{record['pairs_dropped']} (" in caplog.text


def test_a_pass_that_places_every_pair_does_not_warn(caplog):
    s = PairAwareSampler(np.arange(16).reshape(8, 2), images_per_batch=4, num_generations=1, seed=0)
    with caplog.at_level("WARNING", logger="evoquality.training.sampler"):
        list(s)
    assert s.passes == [{"epoch": 0, "pairs": 8, "pairs_used": 8, "pairs_dropped": 0}]
    assert caplog.text == ""
