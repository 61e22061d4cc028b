#!/usr/bin/env bash
# Stage 1 (`evoquality label`) with the vLLM backend on a CPU build of vLLM, side by side with the transformers
# backend, on the tiny Qwen2.5-VL (head_dim 32). Recipe of the venv: README.md beside this script.
#
#   VENV=/tmp/vllm-venv SRC=/path/to/checkout COMMIT=<sha installed in the venv> bash run_stage1.sh OUT_DIR
#
# Writes OUT_DIR/<run>/ (round directories), OUT_DIR/logs/<run>.{out,err} and OUT_DIR/results.json.
set -euo pipefail
PY=${VENV:-/tmp/vllm-venv}/bin/python
SRC=${SRC:-$(cd "$(dirname "$0")/../../.." && pwd)}
OUT=$(mkdir -p "${1:?OUT_DIR}" && cd "$1" && pwd)
cd "$OUT"
mkdir -p logs

# Models: the random tiny model (compare mode: it never writes a parseable answer, so this measures the plumbing and
# the speed) and the same model after a short supervised warm-up on \boxed{score} answers (score mode: parse rates
# are meaningful), the stage-2 tests' scoring model.
[ -d tiny ] || "$PY" -m evoquality make-tiny-model tiny --seed 0
[ -d scoring ] || PYTHONPATH="$SRC/tests/training" "$PY" -c "
from pathlib import Path; from _scoring_model import make_scoring_model
make_scoring_model(Path('tiny'), Path('scoring'), steps=80)"
# Pool: eight of scikit-image's bundled public-domain photos (no download).
[ -d pool ] || "$PY" -c "
from pathlib import Path; from PIL import Image; from skimage import data
Path('pool').mkdir()
for name in ('astronaut', 'chelsea', 'coffee', 'rocket', 'hubble_deep_field', 'camera', 'coins', 'brick'):
    Image.fromarray(getattr(data, name)()).convert('RGB').save(f'pool/{name}.png')"

run() {  # name, then label options
  local name=$1; shift
  rm -rf "$name"
  local t0; t0=$(date +%s.%N)
  # One thread each: vLLM-CPU binds its worker to one core and reserves the other on this 2-core host.
  OMP_NUM_THREADS=1 "$PY" -m evoquality label --images pool --out "$name" --dtype float32 --no-progress \
    "$@" > "logs/$name.out" 2> "logs/$name.err"
  local wall; wall=$(python3 -c "import sys; print(round(float(sys.argv[2]) - float(sys.argv[1]), 1))" \
    "$t0" "$(date +%s.%N)")
  echo "$name $wall" >> logs/wall_s.txt
}
: > logs/wall_s.txt
COMPARE=(--mode compare --pairs 24 --votes 8 --max-new-tokens 32 --batch-items 8 --seed 0)
SCORE=(--mode score --pairs 12 --votes 8 --max-new-tokens 16 --batch-items 8 --seed 0)
# Every image of the pool 32 times: enough answers to compare the backends' parse rates.
SCORE_ALL=(--mode score --score-pairs all --votes 32 --max-new-tokens 16 --batch-items 8 --seed 1 --save-answers)
run compare-vllm --model tiny --backend vllm --vllm-engine-arg max_model_len=2048 "${COMPARE[@]}"
run compare-transformers --model tiny --backend transformers "${COMPARE[@]}"
run score-vllm --model scoring --backend vllm "${SCORE[@]}"
run score-transformers --model scoring --backend transformers "${SCORE[@]}"
run score32-vllm --model scoring --backend vllm "${SCORE_ALL[@]}"
run score32-transformers --model scoring --backend transformers "${SCORE_ALL[@]}"

COMMIT=${COMMIT:-unknown} "$PY" - <<'PY'
import json, os, platform, subprocess
from importlib.metadata import version
walls = dict(line.split() for line in open("logs/wall_s.txt"))
rows = []
for name, wall in walls.items():
    s = json.load(open(f"{name}/summary.json"))
    t = s["throughput"]
    rows.append({"run": name, "wall_s": float(wall), "generation_s": round(t["seconds"], 2),
                 "votes_per_s": round(t["votes_per_s"], 2), "pairs_labelled": s["pairs_labelled"],
                 "votes_total": s["votes_total"], "parse_failure_rate": s["parse_failure_rate"],
                 "votes_valid": s["votes_valid"], "votes_invalid": s["votes_invalid"], "mode": s["mode"]})
versions = {p: version(p) for p in ("vllm-cpu", "torch", "torchvision", "transformers", "evoquality")}
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
json.dump({"device": f"CPU: {cpu}, {subprocess.check_output(['nproc']).decode().strip()} cores",
           "commit": os.environ["COMMIT"], "python": platform.python_version(), "versions": versions, "runs": rows},
          open("results.json", "w"), indent=2)
print(json.dumps(rows, indent=1))
PY
