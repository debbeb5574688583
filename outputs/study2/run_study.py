#!/usr/bin/env python
"""The second noise study: six noises on four real data sets, the paper's walk with both reverse-step z choices, and
the validation split's choice reported beside the test result.

Fixed before any result of it was seen (this docstring and PLAN below are the record; `plan.json` is written from
PLAN on the first run, and a rerun refuses to continue if PLAN has changed):
- data (../shared/data, MVTec layout): PIPED PA_BDP01_TL, PA_BFT01_TL, PA_BRG01_RL (the first study's
  categories) and anomalib's hazelnut toy set;
- noises: gaussian, simplex, gmm, powerlaw alpha 1 and alpha 2, blobs; every noise with diffad's defaults at the
  time it runs (gmm's come from outputs/gmm_study, chosen on the validation split); each row records its noise's
  parameters;
- before it runs (`prerequisites`): gmm's defaults are the ones outputs/gmm_study chose, and the `cpu` preset's
  weights (raw or EMA) the ones outputs/study_recon/select_defaults.py chose;
- training: the `cpu` preset (64 px, its ResUNet, lr 2e-4, batch 16) for 600 steps, its full length, the same for
  every model: 24 models x 600 steps x 16 images at the ~21 images/s of an idle 2-core machine is about three
  hours of training; seed 0; on the 75% of train/good that `diffad.select.validation_split` (seed 0) leaves for
  training. Weights (raw or EMA): the `cpu` preset's default when it runs (set by the EMA study); one
  reconstruction per image in every walk (the paper's protocol; four would quadruple the DDPM walk's cost);
- validation: the other 25% of train/good, half of it with synthetic defects (`validation_split`); never the test set;
- walks, each on the validation split and on the test set: from t0 = 200 the paper's DDPM walk (200 steps) with
  z from the training noise and with z ~ N(0, I) (for Gaussian training noise the two are one draw, so it is run
  once), and DDIM 10 steps; Table 3 over t0 in (50, 100, 300) with DDIM 10 steps (the DDPM walk at every depth
  would cost 450 more network evaluations per image, more than this machine has for the study); the filter
  ablation (1, 3, 5, 7, 11, 15, 21) from every evaluation's raw maps;
- reported: I-AUROC, P-AUROC, AP, AUPRO at the noise's default filter (11; 5 for gmm), network evaluations and
  seconds; per category, the row (noise, walk, t0, filter) the validation criterion (mean of validation I-AUROC and
  P-AUROC, as `diffad.select`) prefers, its test result, and the test set's own best row for comparison.

Run from the repository root:  .venv/bin/python outputs/study2/run_study.py [--data ../shared/data]
It resumes: finished trainings are reused (train(..., resume=True)), and every finished evaluation is a line of
results.jsonl, which a rerun skips. `--report` only rewrites the tables under report/ from results.jsonl.
`--train-only` trains the models (which needs only the gmm defaults settled) and evaluates nothing; `--categories`
takes some categories of the plan, so that two processes can share the work (never two on one category);
`--start-before HH:MM` starts no new model at or after that time, so that a sitting ends between models.
"""
import argparse, json, time
from datetime import datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / 'results.jsonl'
PLAN = dict(
    data=[['piped', 'PA_BDP01_TL'], ['piped', 'PA_BFT01_TL'], ['piped', 'PA_BRG01_RL'], ['hazelnut_toy', 'hazelnut']],
    noises=[['gaussian', {}], ['simplex', {}], ['gmm', {}], ['powerlaw', {'alpha': 1.0}], ['powerlaw', {'alpha': 2.0}], ['blobs', {}]],
    preset='cpu', train_steps=600, seed=0, val_frac=0.25,
    walks=[dict(sampler='ddpm', steps=None, reverse_z='train', t0=200, n_recon=1), dict(sampler='ddpm', steps=None, reverse_z='gaussian', t0=200, n_recon=1),
           dict(sampler='ddim', steps=10, reverse_z='train', t0=200, n_recon=1)]
          + [dict(sampler='ddim', steps=10, reverse_z='train', t0=t0, n_recon=1) for t0 in (50, 100, 300)],
    filters=[1, 3, 5, 7, 11, 15, 21], splits=['val', 'test'],
    criterion='mean of validation I-AUROC and P-AUROC')
METRICS = ('i_auroc', 'p_auroc', 'p_ap', 'aupro')

def noise_label(name:str, kw:dict) -> str: return name + ''.join(f' {k}={v:g}' for k, v in kw.items())
def walk_label(w:dict) -> str:
    s = f"ddpm {w['t0']}, z {w['reverse_z']}" if w['sampler'] == 'ddpm' else f"ddim {w['steps']}"
    return s + ('' if w['t0'] == PLAN['walks'][0]['t0'] or w['sampler'] == 'ddpm' else f", t0 {w['t0']}")
def planned_walks(noise:str) -> list:
    "The walks PLAN runs for `noise`: for Gaussian training noise both z choices are one draw, so it runs once."
    return [w for w in PLAN['walks'] if not (noise == 'gaussian' and w['reverse_z'] == 'gaussian')]
def key(r:dict) -> tuple: return (r['category'], r['noise_label'], r['split'], r['sampler'], r['steps'], r['reverse_z'], r['t0'])

def check_plan():
    "Write plan.json on the first run; refuse to go on under a changed plan."
    p = HERE / 'plan.json'
    if not p.exists(): p.write_text(json.dumps(PLAN, indent=1)); return
    if json.loads(p.read_text()) != json.loads(json.dumps(PLAN)):
        raise SystemExit(f"{p} differs from PLAN in this script: the study was fixed before it ran; start a new study folder instead")

def trained(data_root:Path, ds:str, cat:str, noise:str, kw:dict, splits=('train', 'test')) -> tuple:
    "(run folder, training images, validation set, test set) of one model of the study, trained (or resumed) first."
    from diffad.config import get_config, load_data
    from diffad.train import train
    from diffad.select import validation_split
    cfg = get_config(PLAN['preset'], noise=noise, noise_kwargs=kw, data_root=str(data_root / ds), category=cat,
                     seed=PLAN['seed'], holdout=0.0, train_steps=PLAN['train_steps'])
    train_ds, test_ds = load_data(cfg, splits=splits)
    X, val = validation_split(train_ds, frac=PLAN['val_frac'], seed=PLAN['seed'])
    run_dir = HERE / 'runs' / cat / noise_label(noise, kw).replace(' ', '_').replace('=', '')
    t = time.perf_counter(); train(cfg, run_dir, resume=True, data=X, progress=False)
    print(f"{cat} {noise_label(noise, kw)}: trained on {len(X)} images ({time.perf_counter() - t:.0f} s)", flush=True)
    return run_dir, X, val, test_ds

def prerequisites(training:bool=False) -> list:
    "What must be settled before this study's models are evaluated (`training`: trained): the gmm defaults (and the cpu preset's detection defaults)."
    from diffad.config import PRESETS, Config
    from diffad.noise import get_noise, noise_params
    missing = []
    gmm = HERE.parent / 'gmm_study' / 'defaults.json'
    if not gmm.exists() or json.loads(gmm.read_text()) != noise_params(get_noise('gmm')):
        missing.append(f"diffad's gmm defaults {noise_params(get_noise('gmm'))} are not the ones chosen in {gmm} (outputs/gmm_study)")
    det = HERE.parent / 'study_recon' / 'select_defaults.json'
    cpu = {k: PRESETS[PLAN['preset']].get(k, getattr(Config, k)) for k in ('weights',)}
    if training: return missing
    if not det.exists() or {k: json.loads(det.read_text()).get(k) for k in cpu} != cpu:
        missing.append(f"the {PLAN['preset']} preset's {cpu} are not the ones chosen in {det} (outputs/study_recon/select_defaults.py)")
    return missing

def run(data_root:Path, train_only:bool=False, categories:list|None=None, start_before:datetime|None=None):
    from diffad.detect import Detector, evaluate, metrics_from_maps
    from diffad.noise import noise_params
    from diffad.config import get_config
    check_plan()
    unknown = set(categories or ()) - {c for _, c in PLAN['data']}
    if unknown: raise SystemExit(f"--categories: {sorted(unknown)} not in the plan's {[c for _, c in PLAN['data']]}")
    missing = prerequisites(training=train_only)
    if missing: raise SystemExit('study2 waits for: ' + '; '.join(missing))
    done = {key(json.loads(l)) for l in RESULTS.read_text().splitlines()} if RESULTS.exists() else set()
    for ds, cat in PLAN['data']:
        if categories and cat not in categories: continue
        for noise, kw in PLAN['noises']:
            label = noise_label(noise, kw)
            todo = [(s, w) for s in PLAN['splits'] for w in planned_walks(noise)
                    if (cat, label, s, w['sampler'], w['steps'] or w['t0'], w['reverse_z'], w['t0']) not in done]
            if not todo: continue
            if start_before and datetime.now() >= start_before:   # a model must train and evaluate in one sitting: checkpoints are not kept
                print(f"{datetime.now():%H:%M}: not starting {cat} {label} (--start-before {start_before:%H:%M})", flush=True); return
            run_dir, X, val, test_ds = trained(data_root, ds, cat, noise, kw)
            if train_only: continue
            for split, w in todo:   # the preset's weights now, not the ones in the run's config.json (trained before the choice)
                det = Detector.from_run(run_dir, 'cpu', weights=get_config(PLAN['preset']).weights, **w)
                data = val if split == 'val' else test_ds
                ev = evaluate(det, data, progress=False, pro=split == 'test')
                filt = {}
                for fs in PLAN['filters']:
                    m = metrics_from_maps(ev.amaps, ev.masks, ev.labels, fs, pro=False)
                    filt[fs] = {k: m[k] for k in ('i_auroc', 'p_auroc', 'p_ap')}
                row = dict(category=cat, data=ds, noise=noise, noise_label=label, noise_params=noise_params(det.noise), split=split,
                           sampler=det.sampler, steps=det.steps or det.t0, reverse_z=det.reverse_z, t0=det.t0, weights=det.weights,
                           n_recon=det.n_recon, filter_size=det.filter_size, n_evals=det.n_evals, seconds=round(ev.seconds, 2),
                           n_images=len(data), n_train=len(X), **{m: ev.metrics.get(m) for m in METRICS}, filters=filt)
                with open(RESULTS, 'a') as f: f.write(json.dumps(row) + '\n')
                print(' ', split, walk_label(w), {m: None if row[m] is None else round(row[m], 4) for m in METRICS}, f"{ev.seconds:.0f} s", flush=True)

def _fmt(v): return '' if v is None else f'{100 * v:.1f}'

def report():
    import numpy as np
    rows = [json.loads(l) for l in RESULTS.read_text().splitlines()] if RESULTS.exists() else []
    if not rows: print('no results yet'); return
    out_dir = HERE / 'report'; out_dir.mkdir(exist_ok=True)
    cats = [c for _, c in PLAN['data']]
    noises = [noise_label(n, kw) for n, kw in PLAN['noises']]
    test = [r for r in rows if r['split'] == 'test']
    wl = lambda r: walk_label(dict(sampler=r['sampler'], steps=r['steps'], reverse_z=r['reverse_z'], t0=r['t0']))
    def table(metric, walk, sub=test):
        "Paper layout: a row per category (and the mean), a column per noise."
        cell = {(r['category'], r['noise_label']): r for r in sub if wl(r) == walk}
        lines = ['| category | ' + ' | '.join(noises) + ' |\n', '|' + '---|' * (1 + len(noises)) + '\n']
        for c in cats + ['mean']:
            vals = []
            for n in noises:
                if c == 'mean':
                    v = [cell[(cc, n)][metric] for cc in cats if (cc, n) in cell and cell[(cc, n)][metric] is not None]
                    vals.append(f"{100 * np.mean(v):.1f}" + (f" ({len(v)})" if len(v) < len(cats) else '') if v else '')
                else: vals.append(_fmt(cell[(c, n)][metric]) if (c, n) in cell else '')
            lines.append(f'| {c} | ' + ' | '.join(vals) + ' |\n')
        return ''.join(lines)
    t0_main = PLAN['walks'][0]['t0']
    walks_t200 = [walk_label(w) for w in PLAN['walks'] if w['t0'] == t0_main]
    depths = sorted({w['t0'] for w in PLAN['walks'] if w['sampler'] == 'ddim'})
    n_models = len({(r['category'], r['noise_label']) for r in rows})
    head = (f"{len(rows)} evaluations of {n_models} of the {len(cats) * len(noises)} planned models (the plan: ../run_study.py, ../plan.json). "
            "Values in %, on the test set at each noise's default filter (11; 5 for gmm); a mean over fewer categories than planned "
            "gives their number in brackets. Gaussian noise has no 'z gaussian' column entry: for it both z choices are one draw.\n\n")
    main = ['# Study 2: the noises under the paper\'s walk\n\n', head]
    for metric, name in (('i_auroc', 'Table 1: I-AUROC'), ('p_auroc', 'Table 2: P-AUROC'), ('p_ap', 'Table 2b: AP'), ('aupro', 'AUPRO')):
        for walk in walks_t200:
            main.append(f'\n## {name}, {walk}\n\n' + table(metric, walk))
    (out_dir / 'tables.md').write_text(''.join(main))
    # summary: a row per noise, a column per walk at t0 200, means over the categories evaluated
    summ = ['# Study 2 summary: test-set means over the categories evaluated\n\n', head,
            'Each cell: I-AUROC / P-AUROC / AP (number of categories).\n\n']
    n_walks = {noise_label(n, kw): len(planned_walks(n)) for n, kw in PLAN['noises']}
    complete = [c for c in cats if all(len({wl(r) for r in test if r['category'] == c and r['noise_label'] == n}) == n_walks[n] for n in noises)]
    parts = [('All categories evaluated', cats)]
    if complete and complete != cats:
        parts.append((f"Only the categories every noise has finished ({', '.join(complete)}), so that the rows compare like with like", complete))
    for title, cs in parts:
        summ += [f'## {title}\n\n', '| noise | ' + ' | '.join(walks_t200) + ' |\n', '|---|' + '---|' * len(walks_t200) + '\n']
        for n in noises:
            cells = []
            for walk in walks_t200:
                sub = [r for r in test if r['noise_label'] == n and wl(r) == walk and r['category'] in cs]
                cells.append(' / '.join(f"{100 * np.mean([r[m] for r in sub]):.1f}" for m in ('i_auroc', 'p_auroc', 'p_ap')) + f" ({len(sub)})" if sub else '')
            summ.append(f'| {n} | ' + ' | '.join(cells) + ' |\n')
        summ.append('\n')
    (out_dir / 'summary.md').write_text(''.join(summ))
    # Table 3: depth, DDIM 10 (t0 200 from the main walks)
    t3 = ['# Table 3: diffusion depth t0 (DDIM 10 steps), mean over the categories evaluated\n\n', head,
          '| noise | metric | ' + ' | '.join(f't0 {t}' for t in depths) + ' |\n', '|---|---|' + '---|' * len(depths) + '\n']
    for n in noises:
        for m in ('i_auroc', 'p_auroc', 'p_ap'):
            vals = []
            for t0 in depths:
                v = [r[m] for r in test if r['noise_label'] == n and r['sampler'] == 'ddim' and r['t0'] == t0 and r[m] is not None]
                vals.append(f"{100 * np.mean(v):.1f}" if v else '')
            t3.append(f'| {n} | {m} | ' + ' | '.join(vals) + ' |\n')
    (out_dir / 'table3_depth.md').write_text(''.join(t3))
    # Table 4: filter size, the paper's walk (z from the training noise)
    t4 = ['# Table 4: mean-filter size (DDPM 200, z from the training noise), mean over the categories evaluated\n\n', head,
          '| noise | metric | ' + ' | '.join(f'{f}x{f}' for f in PLAN['filters']) + ' |\n', '|---|---|' + '---|' * len(PLAN['filters']) + '\n']
    for n in noises:
        sub = [r for r in test if r['noise_label'] == n and wl(r) == walks_t200[0]]
        for m in ('i_auroc', 'p_auroc', 'p_ap'):
            vals = [f"{100 * np.mean([r['filters'][str(f)][m] for r in sub]):.1f}" if sub else '' for f in PLAN['filters']]
            t4.append(f'| {n} | {m} | ' + ' | '.join(vals) + ' |\n')
    (out_dir / 'table4_filter.md').write_text(''.join(t4))
    # the validation split's choice beside the test set's
    val = {(r['category'], r['noise_label'], wl(r)): r for r in rows if r['split'] == 'val'}
    tst = {(r['category'], r['noise_label'], wl(r)): r for r in test}
    ch = ['# The validation split\'s choice beside the test set\'s\n\n', head,
          'Per category, over every (noise, walk, t0) evaluated on both splits and every filter size: the row the validation criterion '
          '(mean of validation I-AUROC and P-AUROC on held-out good images with synthetic defects) prefers, its test result, and the '
          'row the test set itself would have picked (mean of test I-AUROC and P-AUROC), which no honest detector can know.\n\n',
          '| category | validation choice | its val. crit. | its test I-AUROC | its test P-AUROC | test-best row | test-best I-AUROC | test-best P-AUROC |\n',
          '|' + '---|' * 8 + '\n']
    for c in cats:
        cand = [(k, f) for k in val if k[0] == c and k in tst for f in PLAN['filters']]
        if not cand: continue
        crit = lambda r, f: (r['filters'][str(f)]['i_auroc'] + r['filters'][str(f)]['p_auroc']) / 2
        vk, vf = max(cand, key=lambda kf: crit(val[kf[0]], kf[1]))
        tk, tf = max(cand, key=lambda kf: crit(tst[kf[0]], kf[1]))
        g = lambda d, k, f, m: _fmt(d[k]['filters'][str(f)][m])
        ch.append(f"| {c} | {vk[1]}, {vk[2]}, f{vf} | {_fmt(crit(val[vk], vf))} | {g(tst, vk, vf, 'i_auroc')} | {g(tst, vk, vf, 'p_auroc')} | "
                  f"{tk[1]}, {tk[2]}, f{tf} | {g(tst, tk, tf, 'i_auroc')} | {g(tst, tk, tf, 'p_auroc')} |\n")
    (out_dir / 'validation_choice.md').write_text(''.join(ch))
    secs = {}
    for r in test: secs.setdefault(wl(r), []).append(r['seconds'] / r['n_images'])
    (out_dir / 'seconds.md').write_text('Seconds per test image (2-core CPU, shared): ' + ', '.join(f"{k} {np.mean(v):.2f}" for k, v in secs.items()) + '\n')
    for f in ('summary.md', 'tables.md', 'table3_depth.md', 'table4_filter.md', 'validation_choice.md'): print((out_dir / f).read_text())

def next_time(hhmm:str) -> datetime:
    "The next local time HH:MM from now (tomorrow's if today's has passed)."
    try: t = datetime.strptime(hhmm, '%H:%M').time()
    except ValueError: raise argparse.ArgumentTypeError(f"{hhmm!r} is not a time HH:MM") from None
    at = datetime.combine(datetime.now().date(), t)
    return at if at > datetime.now() else at + timedelta(days=1)

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--data', default='../shared/data', help='folder holding piped/ and hazelnut_toy/')
    p.add_argument('--report', action='store_true', help='only rewrite report/ from results.jsonl')
    p.add_argument('--train-only', action='store_true', help='train the models, evaluate nothing')
    p.add_argument('--categories', nargs='+', help="only these categories of the plan (default: all)")
    p.add_argument('--start-before', metavar='HH:MM', type=next_time, help="start no model's training at or after this local time (its next occurrence)")
    a = p.parse_args()
    if not a.report: run(Path(a.data), a.train_only, a.categories, a.start_before)
    if not a.train_only: report()
