"""Stage 2 of EvoQuality (fidelity-reward GRPO on TRL) and the self-evolution round loop (docs/method.md).

Modules, one job each: `config` (TrainConfig: paper defaults, YAML/JSON + CLI), `data` (labelled pairs, image
store, the per-image dataset), `sampler` (pair-aware batches), `timing` (per-phase step time), `trainer` (the GRPOTrainer subclass), `stage` (one resumable stage-2 run),
`rounds` (`evolve`: label -> train -> next round), `configs/` (accelerate configs and scale-out recipes). The
commands `evoquality train` / `evolve` are in `evoquality.commands`.
"""
