#!/bin/bash
# Train on a lent GPU machine (the workplace's device tool), which has JAX with CUDA but no TensorFlow and
# where at most 64 MiB travel per call. Prepare here, in the repo root:
#
#   printf '/.whl/\n/.gpu/\n' >> .git/info/exclude
#   python scripts/pack_fer2013.py pack ../shared/data/fer2013.h5 .gpu/fer2013.xz --splits Training PublicTest
#   cp xai_fer.egg-info/entry_points.txt .gpu/        # after `pip install -e .`: the plugins' entry points
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux2014_x86_64 --platform manylinux_2_28_x86_64 -d .whl \
#       keras==3.15.1 namex optree typer==0.29.2 pluggy pydantic pydantic_core annotated-types \
#       typing-inspection typing_extensions
#
# Teachers for knowledge distillation travel in .gpu too (a trained CNN's model.keras is about 3 MB):
#   mkdir -p .gpu/teachers && cp runs/cnn60/model.keras .gpu/teachers/cnn60.keras
# and a run names them:  "distilled --preset improved --set teachers=.gpu/teachers/cnn60.keras,..."
#
# then run there, carrying .gpu and .whl:   bash scripts/gpu/train.sh DEADLINE "NAME ARGS..." ...
# Each "NAME ARGS" is one `xai-fer train cnn` run into runs/NAME (they run side by side on the one GPU). At
# DEADLINE seconds the runs still going are interrupted (each keeps its last finished epoch). Every run's
# state.json and best model come back in $OUT/NAME.tar; unpack it here and finish the run with the full data
# (PrivateTest did not travel):   xai-fer train cnn --data ../shared/data/fer2013.h5 --out runs/NAME --finish
set -u
START=$(date +%s); DEADLINE=$1; shift
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 1
mkdir -p /tmp/site/xai_fer-0.1.0.dist-info
cp .gpu/entry_points.txt /tmp/site/xai_fer-0.1.0.dist-info/
printf 'Metadata-Version: 2.1\nName: xai-fer\nVersion: 0.1.0\n' > /tmp/site/xai_fer-0.1.0.dist-info/METADATA
ln -sfn "$PWD/plugins" /tmp/site/xai_fer_plugins
export PYTHONFAULTHANDLER=1 PYTHONPATH=/tmp/site:$PWD KERAS_BACKEND=jax PYTHONUNBUFFERED=1
export XLA_PYTHON_CLIENT_MEM_FRACTION=${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.2}  # several runs share the GPU
nvidia-smi -L
python3 scripts/pack_fer2013.py unpack .gpu/fer2013.xz ../shared/data/fer2013.h5 || exit 1
# Background jobs of a non-interactive bash start with SIGINT ignored: restore Python's handler, or the deadline's
# `kill -INT` (a clean stop after the last finished epoch) would do nothing.
XAI_FER=(python3 -c "import signal; signal.signal(signal.SIGINT, signal.default_int_handler)
from xai_fer.cli import main; main()")
"${XAI_FER[@]}" plugins >/dev/null || exit 1
pids=(); names=()
for spec in "$@"; do
  read -r name args <<<"$spec"
  # shellcheck disable=SC2086  # ARGS are meant to split
  "${XAI_FER[@]}" train cnn --data ../shared/data/fer2013.h5 --out "runs/$name" $args > "$OUT/$name.log" 2>&1 &
  pids+=($!); names+=("$name")
done
echo "started ${names[*]} at +$(( $(date +%s) - START ))s"
running() { for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && return 0; done; return 1; }
while running && [ $(( $(date +%s) - START )) -lt "$DEADLINE" ]; do sleep 5; done
if running; then
  echo "deadline: interrupting the runs still going"
  for p in "${pids[@]}"; do kill -INT "$p" 2>/dev/null; done; sleep 10
  for p in "${pids[@]}"; do kill -ABRT "$p" 2>/dev/null; done; sleep 3  # faulthandler: where each one hung
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
fi
for n in "${names[@]}"; do
  echo "== $n"; grep -a "^epoch" "$OUT/$n.log" | tail -3
  d=runs/$n/checkpoints; [ -f "$d/state.json" ] || continue
  # What --finish needs here: the state, the best model and the running weight average (when the run keeps one).
  keep=$(python3 -c "import json; s = json.load(open('$d/state.json')); print(s['best'], s.get('average') or '')")
  tar -cf "$OUT/$n.tar" "$d/state.json" $(for f in $keep; do echo "$d/$f"; done)
done
nvidia-smi --query-gpu=name,memory.used --format=csv
echo "total +$(( $(date +%s) - START ))s"
