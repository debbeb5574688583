#!/usr/bin/env python
"""The `cpu` preset's weights (raw or EMA), walk and reconstructions per image, chosen on the validation split only.

Fixed before any of it ran:
- models: Gaussian and simplex noise on PIPED PA_BDP01_TL, anomalib's hazelnut toy set, PIPED PA_BFT01_TL and
  PA_BRG01_RL (in this order; the report uses the models trained so far), trained exactly as the second noise study
  trains them (outputs/study2/run_study.py: the `cpu` preset, 600 steps, seed 0, on the 75% of train/good that
  `diffad.select.validation_split` leaves), so the study reuses them;
- validation: the other 25% of train/good, half of it with synthetic defects; the test set is never read;
- candidates, all at t0 = 200 and the 11 x 11 filter: raw and EMA weights, each with the walks DDPM 200, DDPM 20,
  DDIM 10, and DDIM 10 with 2 and 4 reconstructions per image (the reconstruction study's grid);
- criterion: the mean of validation I-AUROC and P-AUROC (`diffad.select.score_settings`), averaged over the models;
- the choice: the weights of the better mean over all walks; the walk and n_recon of the best candidate with
  those weights. The notebook and README say what was chosen and these numbers.

Run from the repository root:  .venv/bin/python outputs/study_recon/select_defaults.py [--data ../shared/data]
Resumable: every scored model is a line of select_defaults.jsonl, which a rerun skips; trainings resume.
`--categories` takes some of the models' categories, so that two processes can share the work (never two on one
category); the order does not change the choice, which is made once every model is scored.
"""
import argparse, importlib.util, json
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / 'select_defaults.jsonl'
MODELS = [('piped', 'PA_BDP01_TL'), ('hazelnut_toy', 'hazelnut'), ('piped', 'PA_BFT01_TL'), ('piped', 'PA_BRG01_RL')]
NOISES = ('gaussian', 'simplex')
WALKS = [dict(sampler='ddpm', steps=None, n_recon=1), dict(sampler='ddpm', steps=20, n_recon=1), dict(sampler='ddim', steps=10, n_recon=1),
         dict(sampler='ddim', steps=10, n_recon=2), dict(sampler='ddim', steps=10, n_recon=4)]
WEIGHTS = ('raw', 'ema')

def study2():
    spec = importlib.util.spec_from_file_location('study2', HERE.parent / 'study2' / 'run_study.py')
    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod); return mod

def walk_name(c:dict) -> str:
    return f"{c['sampler']} {c['steps'] or 200}" + (f" x{c['n_recon']}" if c['n_recon'] > 1 else '')

def run(data_root:Path, categories:list|None=None):
    from diffad.detect import Detector
    from diffad.select import score_settings
    unknown = set(categories or ()) - {c for _, c in MODELS}
    if unknown: raise SystemExit(f"--categories: {sorted(unknown)} not among {[c for _, c in MODELS]}")
    s2 = study2()
    done = {(r['category'], r['noise']) for r in map(json.loads, OUT.read_text().splitlines())} if OUT.exists() else set()
    for ds, cat in MODELS:
        if categories and cat not in categories: continue
        for noise in NOISES:
            if (cat, noise) in done: continue
            run_dir, X, val, _ = s2.trained(data_root, ds, cat, noise, {}, splits=('train',))
            cands = {(w, i): Detector.from_run(run_dir, 'cpu', weights=w, **c) for w in WEIGHTS for i, c in enumerate(WALKS)}
            table, _ = score_settings(cands, val, t0_grid=(200,), filter_grid=(11,))
            rows = [dict(weights=r['candidate'][0], walk=walk_name(WALKS[r['candidate'][1]]), n_evals=cands[r['candidate']].n_evals,
                         **{k: r[k] for k in ('i_auroc', 'p_auroc', 'criterion')}) for r in table]
            with open(OUT, 'a') as f: f.write(json.dumps(dict(category=cat, noise=noise, n_train=len(X), n_val=len(val), rows=rows)) + '\n')
            print(cat, noise, [(r['weights'], r['walk'], round(r['criterion'], 3)) for r in rows], flush=True)

def report():
    import numpy as np
    models = [json.loads(l) for l in OUT.read_text().splitlines()] if OUT.exists() else []
    if not models: print('no models scored yet'); return
    cell = {}
    for m in models:
        for r in m['rows']: cell.setdefault((r['weights'], r['walk']), []).append(r)
    walks = [walk_name(c) for c in WALKS]
    mean = lambda w, k, m: float(np.mean([r[m] for r in cell.get((w, k), [])]))
    out = ['# The cpu preset\'s detection defaults, chosen on the validation split\n\n',
           f"{len(models)} models: " + ', '.join(f"{m['category']} {m['noise']} ({m['n_train']} training, {m['n_val']} validation images)" for m in models)
           + '. Values: mean over the models, in %; criterion = mean of validation I-AUROC and P-AUROC (t0 200, filter 11).\n\n',
           '| walk | network evaluations | ' + ' | '.join(f'{w} criterion | {w} I-AUROC | {w} P-AUROC' for w in WEIGHTS) + ' |\n',
           '|---|---|' + '---|' * (3 * len(WEIGHTS)) + '\n']
    for k in walks:
        ne = cell[(WEIGHTS[0], k)][0]['n_evals']
        out.append(f'| {k} | {ne} | ' + ' | '.join(f"{100 * mean(w, k, 'criterion'):.1f} | {100 * mean(w, k, 'i_auroc'):.1f} | {100 * mean(w, k, 'p_auroc'):.1f}" for w in WEIGHTS) + ' |\n')
    by_w = {w: float(np.mean([mean(w, k, 'criterion') for k in walks])) for w in WEIGHTS}
    w_best = max(WEIGHTS, key=lambda w: by_w[w])
    k_best = max(walks, key=lambda k: mean(w_best, k, 'criterion'))
    n_plan = len(MODELS) * len(NOISES)
    done = len(models) == n_plan                                      # the choice is made on every planned model, not before
    if not done: out.insert(1, f"**Partial: {len(models)} of the {n_plan} planned models are scored; nothing is chosen yet.**\n\n")
    out.append("\nMean criterion over the walks: " + ', '.join(f"{w} {100 * v:.1f}" for w, v in by_w.items())
               + f". {'Chosen' if done else 'Leading so far'}: weights {w_best}, walk {k_best} (criterion {100 * mean(w_best, k_best, 'criterion'):.1f}).\n")
    (HERE / 'select_defaults.md').write_text(''.join(out))
    fields = next(c for c in WALKS if walk_name(c) == k_best)               # the chosen walk as Config fields
    if done: (HERE / 'select_defaults.json').write_text(json.dumps(dict(weights=w_best, walk=k_best, **fields, by_weights=by_w, n_models=len(models)), indent=1))
    print(''.join(out))

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--data', default='../shared/data', help='folder holding piped/ and hazelnut_toy/')
    p.add_argument('--report', action='store_true', help='only rewrite select_defaults.md from select_defaults.jsonl')
    p.add_argument('--categories', nargs='+', help='only these categories (default: all)')
    a = p.parse_args()
    if not a.report: run(Path(a.data), a.categories)
    report()
