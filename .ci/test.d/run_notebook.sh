#!/usr/bin/env bash
# The papermill experiment notebook runs end to end with injected parameters, and a bad one fails early and clearly.
set -euo pipefail
out=$(mktemp -d); trap 'rm -rf "$out"' EXIT
papermill --no-progress-bar --log-level WARNING nbs/run.ipynb "$out/run.ipynb" -p preset tiny -p noise simplex -p out_dir "$out/run" -p ablations true -p walks "ddpm:all,ddim:3"
python - "$out/run" <<'PY'
import json, sys, pathlib
d = pathlib.Path(sys.argv[1]); r = json.loads((d / 'results.json').read_text())
assert r['noise'] == 'simplex' and r['preset'] == 'tiny', (r['noise'], r['preset'])   # the injected values took effect
assert r['config']['noise'] == 'simplex' and r['config']['image']['size'] == 16
m = r['categories']['brick']
assert 0 <= m['i_auroc'] <= 1 and 0 <= m['p_auroc'] <= 1, m
evals = sorted((d / 'brick' / 'eval').glob('*/scores.csv')); assert len(evals) == 1, evals
for f in ('brick/figure1.png', 'brick/figure2.png', 'brick/ablation_depth.md', 'brick/ablation_filter.md', 'brick/ablation_walks.md', 'results.md'):
    assert (d / f).exists(), f
print('run notebook: noise', r['noise'], 'preset', r['preset'], 'I-AUROC', round(m['i_auroc'], 3))
PY
# -p select true: the validation split chooses among walks too (powerlaw noise, a DDIM walk and the DDPM walk with N(0, I) steps)
papermill --no-progress-bar --log-level WARNING nbs/run.ipynb "$out/sel.ipynb" -p preset tiny -p noise powerlaw -p out_dir "$out/sel" -p select true \
  -p detector_grid '[{"sampler": "ddim", "steps": 3}, {"reverse_z": "gaussian"}]'
python - "$out/sel" <<'PY'
import json, sys, pathlib
d = pathlib.Path(sys.argv[1]); r = json.loads((d / 'results.json').read_text())
sel = json.loads((d / 'brick' / 'select' / 'selection.json').read_text())
walks = {json.dumps(row['detector'], sort_keys=True) for row in sel['table']}
assert walks == {'{"sampler": "ddim", "steps": 3}', '{"reverse_z": "gaussian"}'}, walks
chosen = r['categories']['brick']['selected']['chosen']
assert chosen == sel['chosen'], (chosen, sel['chosen'])
det = json.loads(next((d / 'brick' / 'eval').glob('*/detector.json')).read_text())
st = det['settings']
for k, v in chosen['detector'].items(): assert st[k] == min(v, st['t0']) if k == 'steps' else st[k] == v, (k, v, st[k])
assert st['t0'] == chosen['t0'] and det['noise']['name'] == 'powerlaw', det
print('run notebook, select: chose', chosen)
PY
# -p noise auto: each category's noise is chosen on its validation split, and the results name the choice
papermill --no-progress-bar --log-level WARNING nbs/run.ipynb "$out/auto.ipynb" -p preset tiny -p noise auto -p out_dir "$out/auto"
python - "$out/auto" <<'PY'
import json, sys, pathlib
d = pathlib.Path(sys.argv[1]); r = json.loads((d / 'results.json').read_text())
rec = json.loads((d / 'brick' / 'noise_selection.json').read_text())
m = r['categories']['brick']
assert r['noise'] == 'auto' and len(rec['candidates']) == 6, (r['noise'], rec['candidates'])
assert (m['noise'], m['noise_kwargs']) == (rec['chosen']['noise'], rec['chosen']['noise_kwargs']), (m['noise'], rec['chosen'])
det = json.loads(next((d / 'brick' / 'eval').glob('*/detector.json')).read_text())
assert det['noise']['name'] == rec['chosen']['noise'], det['noise']
print('run notebook, noise auto: chose', rec['chosen'])
PY
if papermill --no-progress-bar --log-level WARNING nbs/run.ipynb "$out/bad.ipynb" -p preset tiny -p noise pink -p out_dir "$out/bad" >"$out/bad.log" 2>&1; then
  echo "FAIL: an unknown noise did not stop the run notebook"; exit 1
fi
grep -q "Config.noise='pink'" "$out/bad.log" || { echo "FAIL: no clear message for an unknown noise"; tail -20 "$out/bad.log"; exit 1; }
[ ! -e "$out/bad/brick" ] || { echo "FAIL: work started before the parameters were checked"; exit 1; }
echo "run notebook: an unknown noise is refused in the first cell"
