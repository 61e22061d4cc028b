"""The embedded default of `evoquality evolve`: a toy world in which self-evolution measurably helps on two CPU cores.

- `world`: 112 px crops of the bundled scikit-image photos under graded Gaussian blur and white noise, split into
  three disjoint photo sets (warm-up, evolution pool, held-out benchmark).
- `base_model`: the toy base model — a 0.7 M-parameter Qwen2.5-VL given a deliberately weak quality prior by a short
  supervised warm-up on the warm-up photos only; the shipped checkpoint (`base_model_weights/`, with its warm-up
  log) is rebuilt by ``python -m evoquality.toy.base_model DIR``.
- `datasets`: the pool on disk (images and series groups only) and its hidden truth, kept apart.
- `report`: held-out SRCC / pairwise accuracy per checkpoint and the quality of each round's pseudo-labels.
- `run`: the driver — report, then one more round of the ordinary `training.rounds.evolve`, report, ...

It is a toy: the model knows nothing of real image quality. It exists so that the whole method runs, and can be
seen to work or fail, anywhere in minutes; it is also the project's end-to-end learning test.
"""
