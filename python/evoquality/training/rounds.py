"""Self-evolution rounds (docs/method.md "Rounds"): label with the current model -> train -> the evolved checkpoint
labels the next round. Resumable at every stage: a crash or kill loses at most the work since the last commit of
the stage it interrupted (stage 1 commits every vote batch, stage 2 every `save_steps`), and nothing finished is
redone.

    out/
      evolve.json            the run's settings (a resume with different settings is refused) and progress
      round_01/labels/       stage 1 round directory (labels.jsonl when finished)
      round_01/train/        stage 2 output; train/model is the evolved checkpoint
      round_01/DONE          written last: the round is complete
      round_02/...

Round t >= 2 adds the paper's synthetic same-content pairs by default: every pool image gets `round2_variants`
distorted variants [paper: 10] and `round2_same_content_pairs` pairs are drawn among each image and its own variants,
on top of the round's own pairs [decision: 20,000, as many as the paper's cross-image pairs]. Turning both
off departs from the paper and is logged as a warning. The KL reference is the model at the round start, or the
initial model (`TrainConfig.ref_model`). Stacking on a supervised IQA model is starting from its checkpoint
(`--model`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Union

from evoquality._files import atomic_write
from evoquality.config_fields import option
from evoquality.training.config import TrainConfig, config_to_dict
from evoquality.training.stage import final_model_dir, process_state, train_stage

logger = logging.getLogger(__name__)

STATE_FILE = "evolve.json"
DONE_FILE = "DONE"
ROUND2_VARIANTS = 10  # [paper] distorted variants per pool image from round 2 on
ROUND2_SAME_CONTENT_PAIRS = 20_000  # [decision] same-content pairs added from round 2 on (= the paper's pair count)


@dataclass
class EvolveSettings:
    """Everything a run depends on (`evoquality evolve` fills model and images with the toy world by default)."""

    out: str
    model: str
    images: str
    rounds: int = option(2, "rounds T [paper: 2]")
    train: TrainConfig = field(default_factory=TrainConfig)
    label: dict = field(default_factory=dict)  # LabelConfig fields other than model/images/out
    # The embedded default (`evoquality evolve` without --model) sets round2_* and lr_round_factor by its own preset
    # (toy.run.TOY_ROUND_DEFAULTS), which is why their flags stay None when not given.
    round2_variants: int = option(ROUND2_VARIANTS, "synthetic distorted variants per pool image from round 2 on "
                                                   "[paper: 10]; the embedded default: its own preset")
    round2_same_content_pairs: int = option(
        ROUND2_SAME_CONTENT_PAIRS, "pairs drawn among an image and its variants from round 2 on, added to the round's "
                                   "own [decision: as many as the paper's cross-image pairs]; 0 and "
                                   "--round2-variants 0 leave the paper's round 2, with a warning; the embedded "
                                   "default: its own preset")
    lr_round_factor: float = option(
        1.0, "learning rate of round t = the training learning rate x this^(t-1): below 1, each round takes smaller "
             "steps from the last one's model [decision: 1, every round at the configured rate; the paper is silent]; "
             "the embedded default: its own preset")

    def validate(self) -> None:
        if not self.model or not self.images:
            raise ValueError("model and images must be given (a checkpoint directory and an image folder/manifest)")
        if not isinstance(self.rounds, int) or self.rounds < 1:
            raise ValueError(f"rounds must be a positive int, got {self.rounds!r}")
        for key in ("model", "images", "out", "seed", "variants", "variant_pairs"):
            if key in self.label:
                raise ValueError(f"label config must not set {key!r}: evolve sets it per round")
        if not (isinstance(self.lr_round_factor, (int, float)) and 0 < self.lr_round_factor <= 1):
            raise ValueError(f"lr_round_factor must be in (0, 1], got {self.lr_round_factor!r}")
        if self.round2_variants < 0 or self.round2_same_content_pairs < 0:
            raise ValueError("round2_variants and round2_same_content_pairs must be >= 0")
        if bool(self.round2_variants) != bool(self.round2_same_content_pairs):
            raise ValueError("round2_variants and round2_same_content_pairs go together (the pairs are drawn among "
                             "an image and its variants): set both > 0, or both 0")

    def departures(self) -> list[str]:
        """Where these settings leave the paper's round structure (logged loudly, recorded in evolve.json)."""
        if self.rounds >= 2 and not self.round2_variants and not self.round2_same_content_pairs:
            return ["round 2 without synthetic same-content pairs (round2_variants = round2_same_content_pairs = 0): "
                    "the paper adds 10 distorted variants per pool image and pairs among an image and its variants"]
        return []

    def fingerprint(self) -> dict:
        """What finished rounds depend on; `rounds` is left out so a finished run can be extended."""
        return {
            "model": self.model, "images": self.images, "train": config_to_dict(self.train), "label": self.label,
            "round2_variants": self.round2_variants, "round2_same_content_pairs": self.round2_same_content_pairs,
            "lr_round_factor": self.lr_round_factor,
        }


def round_dir(out: Union[str, Path], t: int) -> Path:
    return Path(out) / f"round_{t:02d}"


def _atomic_json(path: Path, obj: Any) -> None:
    atomic_write(path, json.dumps(obj, indent=2, default=str))


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
        _atomic_json(state_path, {"settings": fp, "departures": settings.departures(), "rounds": []})


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
    if t >= 2 and settings.round2_variants:  # on top of the round's own pairs
        fields["variants"] = settings.round2_variants
        fields["variant_pairs"] = settings.round2_same_content_pairs
    return LabelConfig(model=str(model), images=str(images), out=str(labels_dir), **fields)


def round_train_config(settings: EvolveSettings, t: int) -> TrainConfig:
    """Stage 2's config of round t: a fresh seed every round, the learning rate scaled by `lr_round_factor`^(t-1)."""
    lr = settings.train.learning_rate * settings.lr_round_factor ** (t - 1)
    return dataclasses.replace(settings.train, seed=settings.train.seed + t, learning_rate=lr)


def evolve(settings: EvolveSettings, *, backend_factory=None, image_loader=None,
           label_transform: Optional[Callable[[int, Path], Path]] = None) -> Path:
    """Run (or resume) `settings.rounds` rounds; returns the final evolved checkpoint.

    Every process of an `accelerate launch` calls this; files are written by the main process.
    label_transform(t, labels_dir) -> labels_dir to train on: a hook for control experiments that replace the
    round's labels (`evoquality.toy.controls`); the method itself never sets it.
    """
    from evoquality.labelling import run_labelling
    from evoquality.labelling.labels import LABELS_FILE

    settings.validate()
    # The state stage 2 needs, taken before stage 1 so that both see the same process group.
    state = process_state(settings.train)
    # Stage 2's batch arithmetic fails here, not after round 1's stage 1 has run.
    settings.train.steps_per_generation(state.num_processes)
    if state.is_main_process:
        for departure in settings.departures():
            logger.warning("evolve departs from the paper: %s", departure)
    out = Path(settings.out)
    _check_or_write_state(out, settings, state.is_main_process)
    state.wait_for_everyone()
    model0, images = Path(settings.model), settings.images
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
        train_labels = labels_dir
        if label_transform is not None:  # written once, by the main process; every process trains on its result
            box = [label_transform(t, labels_dir) if state.is_main_process else None]
            if state.num_processes > 1:
                from accelerate.utils import broadcast_object_list

                broadcast_object_list(box, from_process=0)
            train_labels = Path(box[0])
        ref = model0 if settings.train.ref_model == "initial" else None
        train_config = round_train_config(settings, t)
        train_stage(current, train_labels, rd / "train", train_config, ref_model=ref, image_loader=image_loader)
        if state.is_main_process:
            _record_round(out, t, evolved, labels_dir / LABELS_FILE)
            (rd / DONE_FILE).write_text(json.dumps({"round": t, "model": str(evolved)}) + "\n")
        state.wait_for_everyone()
        current = evolved
    return current
