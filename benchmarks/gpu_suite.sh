#!/usr/bin/env bash
# The GPU check: one unattended script for one H100/H200 with no network. Budget: <= 8 minutes.
#
#   bash benchmarks/gpu_suite.sh OUT_DIR
#
# The machine has PyTorch, Triton and transformers preinstalled but no registry. What it lacks travels with the
# working tree (the device tool's `carry`):
#   .whl/   wheels installed with --no-deps into /tmp/site (trl, transformers matching our pin, datasets, dill,
#           multiprocess) — fetch them with the `pip download` line in benchmarks/README.md
#   .debs/  Debian packages of the codec libraries (libturbojpeg, libjpeg62-turbo, libpng, libwebp, zlib), -dev and
#           runtime, unpacked into a private sysroot to build the native extension
# Each stage has its own time limit and the suite goes on when one fails; everything it writes lands in OUT_DIR,
# packed at the end into OUT_DIR/gpu_suite.tar.gz together with summary.md.
set -uo pipefail
OUT=${1:?usage: gpu_suite.sh OUT_DIR}
# Per-benchmark files go to RESULTS (default OUT_DIR/results); OUT_DIR itself ends with three files: summary.md,
# suite.log and gpu_suite.tar.gz (RESULTS packed), which is what a remote runner that returns few files needs.
RESULTS=${RESULTS_DIR:-$OUT/results}
mkdir -p "$OUT" "$RESULTS"
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
LOG="$OUT/suite.log"
SUMMARY="$RESULTS/summary.md"
PY=${PYTHON:-python3}
start_all=$(date +%s)

DEADLINE=$(( start_all + ${SUITE_BUDGET_S:-500} ))  # the whole suite ends by then: later stages get what is left

stage() {  # stage NAME TIMEOUT_S CMD...: run with a limit, record status and duration
  local name=$1 limit=$2; shift 2
  local t0=$(date +%s)
  local left=$(( DEADLINE - t0 ))
  if [ "$left" -lt 20 ]; then
    echo "| $name | skipped: suite budget spent | |" >>"$SUMMARY.stages"; return 124
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  echo "=== [$name] $(date -u +%T) $*" | tee -a "$LOG"
  timeout --kill-after=10 "$limit" "$@" >>"$LOG" 2>&1
  local rc=$?
  local dt=$(( $(date +%s) - t0 ))
  echo "=== [$name] rc=$rc ${dt}s" | tee -a "$LOG"
  echo "| $name | $rc | ${dt} s |" >>"$SUMMARY.stages"
  return $rc
}

{
  echo "# GPU suite"
  echo
  echo "- date: $(date -u +%FT%TZ)"
  # The device machine may receive the tree without .git: the caller can pass EVQ_COMMIT.
  echo "- commit: ${EVQ_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}"
  echo "- device: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | head -1)"
} >"$SUMMARY"
: >"$SUMMARY.stages"

# --- environment: wheels and a private sysroot with the codec libraries -------------------------------------
if ls .whl/*.whl >/dev/null 2>&1; then
  stage wheels 120 "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
SYSROOT=/tmp/sysroot
if ls .debs/*.deb >/dev/null 2>&1; then
  mkdir -p "$SYSROOT"
  for deb in .debs/*.deb; do dpkg -x "$deb" "$SYSROOT"; done
  # Debian's -dev symlinks can be absolute (libz.so -> /lib/x86_64-linux-gnu/libz.so.1.2.13): point them into the
  # sysroot, or the linker falls back to the non-PIC static archive beside them.
  find "$SYSROOT" -type l | while read -r link; do
    target=$(readlink "$link")
    case "$target" in /*) [ -e "$SYSROOT$target" ] && ln -sfn "$SYSROOT$target" "$link" ;; esac
  done
  LIBDIR=$SYSROOT/usr/lib/x86_64-linux-gnu
  # The .pc files say prefix=/usr: PKG_CONFIG_SYSROOT_DIR re-roots their -I/-L flags, PKG_CONFIG_LIBDIR keeps the
  # host's own .pc files out, and the carried pkgconf serves CMake's FindPkgConfig where the image has none.
  export PKG_CONFIG_SYSROOT_DIR=$SYSROOT PKG_CONFIG_LIBDIR=$LIBDIR/pkgconfig:$SYSROOT/usr/share/pkgconfig
  export PKG_CONFIG=$SYSROOT/usr/bin/pkgconf LD_LIBRARY_PATH=$LIBDIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
fi
# Build the extension in place (editable) with the preinstalled scikit-build-core and pybind11.
# A fresh build folder each run: a CMake cache from an earlier run would keep its library choices.
rm -rf /tmp/evq-build
if ! stage build 180 "$PY" -m pip install -q --no-build-isolation --no-deps --no-index -e . \
  --config-settings=build-dir=/tmp/evq-build; then
  # Nothing below can import evoquality: end here with the log rather than spend the budget on failures.
  cp "$SUMMARY.stages" "$OUT/summary.md"; exit 1
fi
stage info 60 "$PY" -m evoquality info

# --- checks and timings -------------------------------------------------------------------------------------
run_if() {  # run_if SCRIPT NAME TIMEOUT ARGS...: the stage only exists once its benchmark has landed
  local script=$1 name=$2 limit=$3; shift 3
  if [ -f "$script" ]; then stage "$name" "$limit" "$PY" "$script" --out "$RESULTS/$name" "$@"
  else echo "| $name | skipped: $script not present | |" >>"$SUMMARY.stages"; fi
}
# Most important first, so a spent budget cuts the least important.
run_if benchmarks/gpu_kernels.py kernels 110 --budget-s 80
run_if benchmarks/bench_train_step.py train_step_3b 170 --config 3b --images 16 --rollouts 8 --max-new-tokens 128 \
  --steps 2
run_if benchmarks/bench_labelling.py labelling_3b 80 --config 3b
# The CUDA-marked tests (labelling resume determinism on GPU, eval/compare on CUDA, kernels where marked).
EVQ_COMPILED_TRITON=1 stage gpu_tests 90 "$PY" -m pytest -m gpu -q -p no:cacheprovider --junitxml="$RESULTS/gpu_tests.xml" tests
run_if benchmarks/bench_image_pipeline.py image_pipeline 50 --threads 1 2 16 --time-budget 30
run_if benchmarks/bench_labelling.py generate_7b 60 --config 7b --repeats 1

# --- summary --------------------------------------------------------------------------------------------------
{
  echo "- total: $(( $(date +%s) - start_all )) s"
  echo
  echo "| stage | rc | time |"
  echo "|---|---|---|"
  cat "$SUMMARY.stages"
  echo
  for md in $(find "$RESULTS" -name '*.md' ! -name summary.md | sort); do
    echo "## $(basename "$(dirname "$md")")/$(basename "$md")"; echo; cat "$md"; echo
  done
} >>"$SUMMARY"
rm -f "$SUMMARY.stages"
cp "$SUMMARY" "$OUT/summary.md"
cp "$LOG" "$RESULTS/suite.log"
tar -czf "$OUT/gpu_suite.tar.gz" -C "$(dirname "$RESULTS")" "$(basename "$RESULTS")"
echo "suite done in $(( $(date +%s) - start_all )) s"
