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
# The 64 MiB hold the tracked files (~9.5 MB), the pack (48.5 MB) and the wheels (5.9 MB), and little more: name
# the shipped xai_fer/reference/cnn.keras as a teacher where it is one, and for the call take what the GPU does
# not need out of the index (it then does not travel), putting it back straight after, with no commit in between:
#   git rm -r -q --cached docs xai_fer/reference/dnn.keras && printf '/docs/\n/xai_fer/reference/dnn.keras\n' \
#       >> .git/info/exclude            # after the call:  git reset -q -- docs xai_fer/reference/dnn.keras
#                                       # and remove those two lines from .git/info/exclude
#
# then run there, carrying .gpu and .whl:   bash scripts/gpu/train.sh DEADLINE "NAME ARGS..." ...
# Each "NAME ARGS" is one `xai-fer train cnn` run into runs/NAME (they run side by side on the one GPU). At
# DEADLINE seconds the runs still going are interrupted (each keeps its last finished epoch). Every run's
# state.json and best model come back in $OUT/NAME.tar; unpack it here and finish the run with the full data
# (PrivateTest did not travel):   xai-fer train cnn --data ../shared/data/fer2013.h5 --out runs/NAME --finish
#
# Nobody knows in advance how long an epoch takes there with several runs sharing the GPU, and a cosine schedule
# cut short by the deadline ends at a high learning rate. So once every run has PROBE_EPOCHS (default 3) epochs,
# each run whose --epochs N would not end by the deadline is started again, from scratch, with as many epochs as
# fit (its measured epoch time and start-up time, TAIL_SECONDS left for the work after the last epoch).
# PROBE_EPOCHS=0 turns that off. Each run's ARGS must then name --epochs.
set -u
START=$(date +%s); DEADLINE=$1; shift
PROBE_EPOCHS=${PROBE_EPOCHS:-3}; TAIL_SECONDS=${TAIL_SECONDS:-45}
if [ "$PROBE_EPOCHS" = 1 ]; then echo "PROBE_EPOCHS must be 0 (off) or at least 2: the first epoch compiles"; exit 1; fi
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  || exit 1  # --upgrade: a machine still warm from the last call has them already
mkdir -p /tmp/site/xai_fer-0.1.0.dist-info
cp .gpu/entry_points.txt /tmp/site/xai_fer-0.1.0.dist-info/
printf 'Metadata-Version: 2.1\nName: xai-fer\nVersion: 0.1.0\n' > /tmp/site/xai_fer-0.1.0.dist-info/METADATA
ln -sfn "$PWD/plugins" /tmp/site/xai_fer_plugins
export PYTHONFAULTHANDLER=1 PYTHONPATH=/tmp/site:$PWD KERAS_BACKEND=jax PYTHONUNBUFFERED=1
export XLA_PYTHON_CLIENT_MEM_FRACTION=${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.2}  # several runs share the GPU
# A run started again after the probe compiles the same steps: keep them on disk.
export JAX_COMPILATION_CACHE_DIR=/tmp/jax-cache JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0
nvidia-smi -L
python3 scripts/pack_fer2013.py unpack .gpu/fer2013.xz ../shared/data/fer2013.h5 || exit 1
# Background jobs of a non-interactive bash start with SIGINT ignored: restore Python's handler, or the deadline's
# `kill -INT` (a clean stop after the last finished epoch) would do nothing.
XAI_FER=(python3 -c "import signal; signal.signal(signal.SIGINT, signal.default_int_handler)
from xai_fer.cli import main; main()")
"${XAI_FER[@]}" plugins >/dev/null || exit 1
pids=(); names=(); specs=(); launched=()
launch() {  # launch INDEX NAME ARGS: one run, in the background, logged to $OUT/NAME.log
  local i=$1 name=$2; shift 2
  # shellcheck disable=SC2068  # ARGS are meant to split
  "${XAI_FER[@]}" train cnn --data ../shared/data/fer2013.h5 --out "runs/$name" $@ >> "$OUT/$name.log" 2>&1 &
  pids[i]=$!; launched[i]=$(date +%s)
}
for spec in "$@"; do
  read -r name args <<<"$spec"
  i=${#names[@]}; names+=("$name"); specs+=("$args")
  launch "$i" "$name" "$args"
done
echo "started ${names[*]} at +$(( $(date +%s) - START ))s"
running() { for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && return 0; done; return 1; }
# epochs_done NAME: finished epochs of runs/NAME (0 before the first)
epochs_done() { python3 -c "import json, sys; print(json.load(open(sys.argv[1]))['epoch'])" \
  "runs/$1/checkpoints/state.json" 2>/dev/null || echo 0; }
probing() { for i in "${!names[@]}"; do
  kill -0 "${pids[i]}" 2>/dev/null && [ "$(epochs_done "${names[i]}")" -lt "$PROBE_EPOCHS" ] && return 0; done; return 1; }
if [ "$PROBE_EPOCHS" -gt 0 ]; then
  while probing && [ $(( $(date +%s) - START )) -lt "$DEADLINE" ]; do sleep 2; done
  for i in "${!names[@]}"; do
    name=${names[i]}; kill -0 "${pids[i]}" 2>/dev/null || continue
    # From the run's own clock (state.json's history): the last epoch's seconds are the steady pace; whatever
    # else has passed since the launch (data, teachers, compiling) is paid again by a new start.
    fit=$(python3 - "runs/$name/checkpoints/state.json" "${launched[i]}" "$START" "$DEADLINE" "$TAIL_SECONDS" \
          "${specs[i]}" <<'PY'
import json, re, sys, time
state, launched, start, deadline, tail, args = sys.argv[1], *map(float, sys.argv[2:6]), sys.argv[6]
try:
    s = json.load(open(state))
except OSError:
    sys.exit(print("skip - - -"))  # the deadline came before its first epoch
seconds, done = s["history"]["seconds"], s["epoch"]
epochs = re.search(r"--epochs[ =](\d+)", args)
if epochs is None or done < 2:
    sys.exit(print("skip - - -"))  # nothing to shorten, or no steady epoch to time
planned = int(epochs.group(1))
now, pace = time.time(), seconds[-1]
startup = now - launched - sum(seconds) + seconds[0] - pace
if now + (planned - done) * pace + tail <= start + deadline:
    print(f"keep {planned} {pace:.1f} {startup:.0f}")
else:
    print(f"restart {int((start + deadline - now - startup - tail) // pace)} {pace:.1f} {startup:.0f}")
PY
)
    read -r verdict epochs pace startup <<<"$fit"
    if [ "$verdict" = skip ]; then echo "$name: left as it is (no --epochs, or not 2 epochs yet)"; continue; fi
    echo "$name: $verdict ($epochs epochs at ${pace}s an epoch, start-up ${startup}s) at +$(( $(date +%s) - START ))s"
    if [ "$verdict" = restart ] && [ "$epochs" -ge 10 ]; then
      kill -9 "${pids[i]}"; wait "${pids[i]}" 2>/dev/null; rm -rf "runs/$name"
      specs[i]=$(sed -E "s/--epochs[ =][0-9]+/--epochs $epochs/" <<<"${specs[i]}")
      echo "== restarted with --epochs $epochs" >> "$OUT/$name.log"
      launch "$i" "$name" "${specs[i]}"
    fi
  done
fi
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
