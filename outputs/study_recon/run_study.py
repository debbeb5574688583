#!/usr/bin/env python
"""The reconstruction study committed under outputs/study_recon: EMA against raw weights, and averaged maps.

Fixed before any of it ran:
- data: the three PIPED categories of the first study (PA_BDP01_TL, PA_BFT01_TL, PA_BRG01_RL), anomalib's
  hazelnut toy set and the MVTec AD grid subset, from ../shared/data (MVTec layout);
- noises: gaussian and simplex (diffad's defaults); the `cpu` preset at its full training length (600 steps of
  batch 16) on all of train/good (holdout 0, as the paper), seed 0; one model per data set and noise, its raw and
  its EMA weights both evaluated;
- walks, from t0 = 200: DDPM 200 (the paper), DDPM 20 (strided), DDIM 10, and DDIM 10 with 2 and 4
  reconstructions per image (n_recon), maps averaged before the filter (11);
- reported per row: I-AUROC, P-AUROC, AP, AUPRO, network evaluations per image and seconds.

Run from the repository root:  .venv/bin/python outputs/study_recon/run_study.py [--data ../shared/data]
It resumes: a finished training is reused (train(..., resume=True) continues an unfinished one), and every
finished evaluation is a line of results.jsonl, which a rerun skips. `--report` only rewrites the tables and
the figure from results.jsonl. `--categories` takes some of the categories, so that two processes can share the
work (never two on one category).
"""
import argparse, json, time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = [('piped', 'PA_BDP01_TL'), ('piped', 'PA_BFT01_TL'), ('piped', 'PA_BRG01_RL'), ('hazelnut_toy', 'hazelnut'), ('mvtec_subset', 'grid')]
NOISES = ('gaussian', 'simplex')
WEIGHTS = ('raw', 'ema')
WALKS = [('ddpm', None, 1), ('ddpm', 20, 1), ('ddim', 10, 1), ('ddim', 10, 2), ('ddim', 10, 4)]   # (sampler, steps, n_recon)
RESULTS = HERE / 'results.jsonl'
METRICS = ('i_auroc', 'p_auroc', 'p_ap', 'aupro')

def key(r): return (r['data'], r['category'], r['noise'], r['weights'], r['sampler'], r['steps'], r['n_recon'])

def done() -> set:
    return {key(json.loads(l)) for l in RESULTS.read_text().splitlines()} if RESULTS.exists() else set()

def run(data_root:Path, categories:list|None=None):
    from diffad.config import get_config, load_data
    from diffad.train import train
    from diffad.detect import Detector, evaluate
    unknown = set(categories or ()) - {c for _, c in DATA}
    if unknown: raise SystemExit(f"--categories: {sorted(unknown)} not among {[c for _, c in DATA]}")
    finished = done()
    for ds, cat in DATA:
        if categories and cat not in categories: continue
        for noise in NOISES:
            todo = [(w, s, n, r) for w in WEIGHTS for s, n, r in WALKS if (ds, cat, noise, w, s, n or 200, r) not in finished]
            if not todo: continue
            cfg = get_config('cpu', noise=noise, data_root=str(data_root / ds), category=cat, seed=0, holdout=0.0)  # all of train/good, as the paper
            run_dir = HERE / f'{ds}_{noise}' / cat
            train_ds, test_ds = load_data(cfg)
            t = time.perf_counter(); train(cfg, run_dir, resume=True, data=train_ds, progress=False)
            print(f"{ds}/{cat} {noise}: trained ({time.perf_counter() - t:.0f} s)", flush=True)
            for weights, sampler, steps, n_recon in todo:
                det = Detector.from_run(run_dir, 'cpu', weights=weights, sampler=sampler, steps=steps, n_recon=n_recon)
                ev = evaluate(det, test_ds, progress=False)
                row = dict(data=ds, category=cat, noise=noise, weights=weights, sampler=sampler, steps=steps or det.t0, n_recon=n_recon,
                           n_evals=ev.n_evals, seconds=round(ev.seconds, 2), n_test=len(test_ds), **{m: ev.metrics.get(m) for m in METRICS})
                with open(RESULTS, 'a') as f: f.write(json.dumps(row) + '\n')
                print(' ', {k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}, flush=True)

def report():
    "Tables (one per noise: rows walk x weights, columns the data sets' mean and each data set) and the figure."
    import numpy as np, matplotlib; matplotlib.use('Agg'); import matplotlib.pyplot as plt
    rows = [json.loads(l) for l in RESULTS.read_text().splitlines()] if RESULTS.exists() else []
    if not rows: print('no results yet'); return
    walk = lambda r: f"{r['sampler']} {r['steps']}" + (f" x{r['n_recon']}" if r['n_recon'] > 1 else '')
    cats = [c for _, c in DATA]
    out = ['# Reconstruction study: raw against EMA weights, and averaged maps\n',
           f'{len(rows)} evaluations of {len({(r["data"], r["category"], r["noise"]) for r in rows})} models '
           f'(of {len(DATA) * len(NOISES) * len(WEIGHTS) * len(WALKS)} and {len(DATA) * len(NOISES)} planned). Values in %; '
           'the mean is over the data sets evaluated for that row, listed in `n`.\n']
    for noise in NOISES:
        sub = [r for r in rows if r['noise'] == noise]
        if not sub: continue
        out.append(f'\n## {noise}\n')
        for m in METRICS:
            out.append(f'\n### {m}\n\n| walk | weights | n_evals | n | mean | ' + ' | '.join(cats) + ' |\n|' + '---|' * (5 + len(cats)) + '\n')
            for s, n, rr in WALKS:
                for w in WEIGHTS:
                    cell = {r['category']: r for r in sub if (r['sampler'], r['steps'], r['n_recon'], r['weights']) == (s, n or 200, rr, w)}
                    if not cell: continue
                    vals = [cell[c][m] for c in cats if c in cell and cell[c][m] is not None]
                    ne = next(iter(cell.values()))['n_evals']
                    out.append(f"| {walk(next(iter(cell.values())))} | {w} | {ne} | {len(vals)} | {100 * np.mean(vals):.1f} | "
                               + ' | '.join(f"{100 * cell[c][m]:.1f}" if c in cell and cell[c][m] is not None else '' for c in cats) + ' |\n')
        secs = {walk(r): [] for r in sub}
        for r in sub: secs[walk(r)].append(r['seconds'] / r['n_test'])
        out.append('\nSeconds per test image (2-core CPU, shared with other jobs): '
                   + ', '.join(f"{k} {np.mean(v):.2f}" for k, v in secs.items()) + '\n')
    (HERE / 'report.md').write_text(''.join(out))
    fig, axs = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, m in zip(axs, ('i_auroc', 'p_ap')):
        for noise, mk in zip(NOISES, 'os'):
            for w, ls in zip(WEIGHTS, ('--', '-')):
                pts = []
                for s, n, rr in WALKS:
                    cell = [r for r in rows if (r['noise'], r['weights'], r['sampler'], r['steps'], r['n_recon']) == (noise, w, s, n or 200, rr) and r[m] is not None]
                    if cell: pts.append((cell[0]['n_evals'], 100 * np.mean([r[m] for r in cell]), walk(cell[0])))
                if not pts: continue
                pts.sort()
                ax.plot([p[0] for p in pts], [p[1] for p in pts], ls, marker=mk, label=f'{noise}, {w}')
                for x, y, lab in pts: ax.annotate(lab, (x, y), fontsize=6, xytext=(3, 3), textcoords='offset points')
        ax.set_xscale('log'); ax.set_xlabel('network evaluations per image'); ax.set_ylabel(f'mean {m} (%)'); ax.grid(alpha=0.3)
    axs[0].legend(fontsize=7); fig.suptitle('cpu preset, mean over the data sets evaluated', fontsize=9); fig.tight_layout()
    fig.savefig(HERE / 'figure_evals.png', dpi=90)
    print((HERE / 'report.md').read_text())

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--data', default='../shared/data', help='folder holding piped/, hazelnut_toy/, mvtec_subset/')
    p.add_argument('--report', action='store_true', help='only rewrite report.md and figure_evals.png from results.jsonl')
    p.add_argument('--categories', nargs='+', help='only these categories (default: all)')
    a = p.parse_args()
    if not a.report: run(Path(a.data), a.categories)
    report()
