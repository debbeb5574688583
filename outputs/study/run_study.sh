#!/usr/bin/env bash
# The real-data study committed under outputs/study: three noises on three PIPED categories and on the
# built-in dataset, with one setting for everything, fixed before any result was seen: the cpu preset,
# shortened to fit a two-core machine (100 training steps of batch 16 instead of 600), evaluated with
# 20 strided DDPM reverse steps from t0 = 200, seed 0. Three streams run side by side, one thread each.
# Run from the repository root: bash outputs/study/run_study.sh [path/to/piped]
set -euo pipefail
PIPED=${1:-../shared/data/piped}
CATS=PA_BDP01_TL,PA_BFT01_TL,PA_BRG01_RL   # the first three PIPED categories by name
PM=".venv/bin/papermill --no-progress-bar --log-level WARNING"
COMMON="-p preset cpu -p train_steps 100 -p steps 20 -p seed 0"
export OMP_NUM_THREADS=1
piped() {  # one papermill run per noise: all three categories, results.json per noise
  for noise in "$@"; do
    mkdir -p outputs/study/piped_$noise
    $PM nbs/run.ipynb outputs/study/piped_$noise/run.ipynb $COMMON -p noise $noise \
        -p data_root "$PIPED" -p category $CATS -p out_dir outputs/study/piped_$noise
  done
}
builtin() {  # the built-in brick category, with the ablations over reverse walks and filter sizes
  for noise in gaussian simplex gmm; do
    mkdir -p outputs/study/builtin_$noise
    $PM nbs/run.ipynb outputs/study/builtin_$noise/run.ipynb $COMMON -p noise $noise \
        -p category brick -p out_dir outputs/study/builtin_$noise -p ablations true \
        -p walks "ddpm:20,ddpm:10,ddpm:5,ddim:20,ddim:10,ddim:5"
  done
}
piped gaussian simplex & a=$!
piped gmm & c=$!
builtin & b=$!
wait $a; wait $c; wait $b
.venv/bin/python -c "from diffad.report import build_report; print(build_report('outputs/study'))"
.venv/bin/python - <<'PY'
from diffad.report import figures_from_runs
for data, cat in (('builtin', 'brick'), ('piped', 'PA_BDP01_TL')):
    print(figures_from_runs({n: f'outputs/study/{data}_{n}/{cat}' for n in ('gaussian', 'simplex', 'gmm')}, f'outputs/study/report/figures_{data}_{cat}'))
PY
