#!/usr/bin/env bash
# The GPU benchmark notebook runs on the CPU with the tiny preset, so that it cannot rot.
set -euo pipefail
out=$(mktemp -d); trap 'rm -rf "$out"' EXIT
papermill --no-progress-bar --log-level WARNING nbs/benchmarks/gpu.ipynb "$out/gpu.ipynb" -p preset tiny -p device cpu -p train_iters 2 -p eval_steps 5 -p out "$out/gpu.json"
python - "$out/gpu.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
for k in ('train_images_per_s', 'eval_image_steps_per_s', 'gflop_per_forward', 'train_tflops', 'eval_tflops', 'paper_protocol_hours'):
    assert k in r, k
assert r['train_images_per_s'] > 0 and r['eval_image_steps_per_s'] > 0
from diffad.config import get_config, make_model
from diffad.unet import count_flops, count_params
model = make_model(get_config('tiny'))                      # the numbers describe the tiny network the benchmark was asked for
assert (r['preset'], r['size'], r['eval_steps']) == ('tiny', 16, 5), r
assert r['params'] == count_params(model), (r['params'], count_params(model))
assert abs(r['gflop_per_forward'] - count_flops(model, 16) / 1e9) < 1e-9, (r['gflop_per_forward'], count_flops(model, 16) / 1e9)
assert abs(r['eval_images_per_s'] - r['eval_image_steps_per_s'] / r['t0']) < 1e-6 * r['eval_images_per_s'], r
print('gpu benchmark (tiny, cpu):', {k: round(r[k], 3) for k in ('train_images_per_s', 'eval_image_steps_per_s', 'gflop_per_forward')})
PY
