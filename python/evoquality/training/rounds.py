"""Self-evolution rounds (METHOD.md "Rounds"): label with the current model -> train -> the evolved checkpoint
labels the next round. Resumable at every stage: a crash or kill loses at most the work since the last commit of
the stage it interrupted (stage 1 commits every vote batch, stage 2 every `save_steps`), and nothing finished is
redone.

    out/
      evolve.json            the run's settings (a resume with different settings is refused) and progress
      initial_model/         only without --model: the embedded default (the tiny Qwen2.5-VL for now)
      default_pool/          only without --images: the bundled photos (scikit-image)
      round_01/labels/       stage 1 round directory (labels.jsonl when finished)
      round_01/train/        stage 2 output; train/model is the evolved checkpoint
      round_01/DONE          written last: the round is complete
      round_02/...

Round t >= 2 may add synthetic same-content pairs (`round2_variants`, `round2_same_content_pairs`). The KL reference
is the model at the round start, or the initial model (`TrainConfig.ref_model`). Stacking on a supervised IQA model
is starting from its checkpoint (`--model`).
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

from evoquality.training.config import TrainConfig, config_to_dict
from evoquality.training.stage import final_model_dir, train_stage

STATE_FILE = "evolve.json"
DONE_FILE = "DONE"

# The embedded default (no --model): small enough to run a full two-round loop on a laptop CPU in minutes.
# Explicit flags and config files override every value.
TINY_LABEL_DEFAULTS = {"pairs": 12, "votes": 4, "max_new_tokens": 24, "batch_items": 4, "progress": False}
TINY_TRAIN_DEFAULTS = {"num_generations": 4, "images_per_step": 4, "per_device_train_batch_size": 8,
                       "max_completion_length": 24, "learning_rate": 1e-5, "save_steps": 2,
                       "gradient_checkpointing": False}


@dataclass
class EvolveSettings:
    """Everything a run depends on. model None = the embedded default; images None = the bundled photos."""

    out: str
    rounds: int = 2
    model: Optional[str] = None
    images: Optional[str] = None
    train: TrainConfig = field(default_factory=TrainConfig)
    label: dict = field(default_factory=dict)  # LabelConfig fields other than model/images/out
    round2_variants: int = 0
    round2_same_content_pairs: int = 0

    def validate(self) -> None:
        if not isinstance(self.rounds, int) or self.rounds < 1:
            raise ValueError(f"rounds must be a positive int, got {self.rounds!r}")
        for key in ("model", "images", "out", "seed"):
            if key in self.label:
                raise ValueError(f"label config must not set {key!r}: evolve sets it per round")
        if self.round2_variants < 0 or self.round2_same_content_pairs < 0:
            raise ValueError("round2_variants and round2_same_content_pairs must be >= 0")
        if self.round2_variants and not self.round2_same_content_pairs:
            raise ValueError("round2_variants are only used by same-content pairs: set round2_same_content_pairs > 0")

    def fingerprint(self) -> dict:
        """What finished rounds depend on; `rounds` is left out so a finished run can be extended."""
        return {
            "model": self.model, "images": self.images, "train": config_to_dict(self.train), "label": self.label,
            "round2_variants": self.round2_variants, "round2_same_content_pairs": self.round2_same_content_pairs,
        }


def round_dir(out: Union[str, Path], t: int) -> Path:
    return Path(out) / f"round_{t:02d}"


def _atomic_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str))
    os.replace(tmp, path)


def _default_model(out: Path, is_main: bool, barrier) -> Path:
    from evoquality.tiny_model import make_tiny_model

    path = out / "initial_model"
    if is_main and not (path / "config.json").is_file():
        partial = out / "initial_model.partial"
        make_tiny_model(partial, seed=0)
        os.replace(partial, path)
    barrier()
    return path


def _default_pool(out: Path, is_main: bool, barrier) -> Path:
    from evoquality.data.synthetic import bundled_references, fit_size

    path = out / "default_pool"
    if is_main and not (path / "COMPLETE").is_file():
        path.mkdir(parents=True, exist_ok=True)
        for name, image in bundled_references():
            fit_size(image, 112).save(path / f"{name}.png")
        (path / "COMPLETE").write_text("")
    barrier()
    return path


def _check_or_write_state(out: Path, settings: EvolveSettings, is_main: bool) -> None:
    state_path = out / STATE_FILE
    fp = json.loads(json.dumps(settings.fingerprint(), default=str))
    if state_path.is_file():
        stored = json.loads(state_path.read_text())
        diff = sorted(k for k in fp if stored.get("settings", {}).get(k) != fp[k])
        if diff:
            raise ValueError(
                f"out: {str(out)!r} holds a run with different settings ({', '.join(diff)}); "
                "use a new --out or the original settings to resume"
            )
    elif is_main:
        out.mkdir(parents=True, exist_ok=True)
        _atomic_json(state_path, {"settings": fp, "rounds": []})


def _record_round(out: Path, t: int, model: Path, labels: Path) -> None:
    state_path = out / STATE_FILE
    state = json.loads(state_path.read_text())
    state["rounds"] = [r for r in state["rounds"] if r["round"] != t] + [
        {"round": t, "model": str(model), "labels": str(labels)}
    ]
    _atomic_json(state_path, state)


def label_config(settings: EvolveSettings, t: int, model: Path, images: str, labels_dir: Path):
    from evoquality.labelling import LabelConfig

    fields = dict(settings.label)
    fields["seed"] = settings.train.seed + t  # a fresh draw of pairs and votes every round
    if t >= 2 and settings.round2_same_content_pairs:
        fields["variants"] = settings.round2_variants
        fields["same_content_pairs"] = settings.round2_same_content_pairs
    return LabelConfig(model=str(model), images=str(images), out=str(labels_dir), **fields)


def evolve(settings: EvolveSettings, *, backend_factory=None, image_loader=None) -> Path:
    """Run (or resume) `settings.rounds` rounds; returns the final evolved checkpoint.

    Every process of an `accelerate launch` calls this; files are written by the main process.
    """
    from accelerate import PartialState

    from evoquality.labelling import run_labelling
    from evoquality.labelling.labels import LABELS_FILE

    settings.validate()
    state = PartialState(cpu=settings.train.use_cpu)
    out = Path(settings.out)
    _check_or_write_state(out, settings, state.is_main_process)
    state.wait_for_everyone()
    model0 = Path(settings.model) if settings.model else _default_model(out, state.is_main_process,
                                                                         state.wait_for_everyone)
    images = settings.images or str(_default_pool(out, state.is_main_process, state.wait_for_everyone))
    current = model0
    for t in range(1, settings.rounds + 1):
        rd = round_dir(out, t)
        evolved = final_model_dir(rd / "train")
        if (rd / DONE_FILE).is_file():
            current = evolved
            continue
        labels_dir = rd / "labels"
        if not (labels_dir / LABELS_FILE).is_file():  # stage 1 resumes from its own vote shards
            run_labelling(label_config(settings, t, current, images, labels_dir), backend_factory=backend_factory)
            state.wait_for_everyone()
        ref = model0 if settings.train.ref_model == "initial" else None
        train_config = dataclasses.replace(settings.train, seed=settings.train.seed + t)
        train_stage(current, labels_dir, rd / "train", train_config, ref_model=ref, image_loader=image_loader)
        if state.is_main_process:
            _record_round(out, t, evolved, labels_dir / LABELS_FILE)
            (rd / DONE_FILE).write_text(json.dumps({"round": t, "model": str(evolved)}) + "\n")
        state.wait_for_everyone()
        current = evolved
    return current
