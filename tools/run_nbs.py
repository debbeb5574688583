#!/usr/bin/env python
"""Execute the notebooks as `nbdev_test` does and keep the executed copies for the docs.

Each notebook runs in execnb's `CaptureShell` with `IN_TEST=1` from its own folder; cells flagged with
settings.ini's `tst_flags` and `#| eval: false` cells are skipped, `skip_exec` notebooks are copied as saved.
The executed notebook goes to `_exec/`, named as nbdev names its page (`01_noise.ipynb` -> `noise.ipynb`).
It is the test step of `.ci/test` (always `--force`) and the first step of `make docs`, which reruns only
notebooks older than their copy, the package or settings.ini. A failed cell is reported with its notebook and
number, as `nbdev_test` reports it, and the exit status is 1.
"""
import argparse, os, re, sys, time
from pathlib import Path
from fastcore.basics import str2bool
from fastcore.parallel import parallel
from fastcore.xtras import working_directory
from execnb.nbio import read_nb, write_nb
from execnb.shell import CaptureShell
from nbdev.config import get_config
from nbdev.doclinks import nbglob
from nbdev.frontmatter import FrontmatterProc
from nbdev.process import NBProcessor, extract_directives

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / '_exec'

def page_name(rel:Path) -> Path:
    "The name nbdev gives a notebook's page: `benchmarks/01_x.ipynb` -> `benchmarks/x.ipynb`."
    return rel.with_name(re.sub(r'^\d+[a-zA-Z0-9]*_', '', rel.name.lower()))

def run_nb(job:tuple, flags:set, do_print=True):
    "Run notebook `src` like nbdev's `test_nb` and save it with its outputs to `dst`; returns (ok, seconds)."
    src, dst = job
    sys.path.insert(0, str(ROOT))
    os.environ['IN_TEST'] = '1'
    fm = getattr(NBProcessor(src, procs=FrontmatterProc, process=True).nb, 'frontmatter_', {}) or {}
    nb, start, ok = read_nb(src), time.time(), True
    if not str2bool(fm.get('skip_exec', False)):
        def skip(cell):
            if cell.cell_type != 'code' or 'nbdev_export' + '(' in cell.source: return True
            d = extract_directives(cell, remove=False)
            return d.get('eval:', [''])[0].lower() == 'false' or bool(flags & d.keys())
        k = CaptureShell(src)
        if do_print: print(f'Starting {src}', flush=True)
        try:
            with working_directory(src.parent): k.run_all(nb, exc_stop=True, preproc=skip)
        except Exception:
            sys.stderr.write(k.prettytb(fname=src) + '\n'); ok = False
        if do_print: print(f'- Completed {src}', flush=True)
    dst.unlink(missing_ok=True)
    if ok: dst.parent.mkdir(parents=True, exist_ok=True); write_nb(nb, dst)
    return ok, time.time() - start

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--force', action='store_true', help='run every notebook, even those whose copy is up to date')
    ap.add_argument('--n_workers', type=int, default=2, help='notebooks run at once (default 2)')
    a = ap.parse_args()
    os.chdir(ROOT)
    cfg = get_config()
    nbs = cfg.nbs_path
    srcs = sorted(nbglob(nbs, as_path=True))
    dsts = [OUT / page_name(s.relative_to(nbs)) for s in srcs]
    for f in OUT.rglob('*.ipynb'):  # pages of notebooks that are gone
        if f not in dsts: f.unlink()
    newest = max(p.stat().st_mtime for p in [cfg.config_file, *Path(cfg.lib_path).rglob('*.py')])
    todo = [(s, d) for s, d in zip(srcs, dsts)
            if a.force or not d.exists() or d.stat().st_mtime < max(newest, s.stat().st_mtime)]
    print(f'run_nbs: {len(todo)} of {len(srcs)} notebook(s) to run into {OUT.relative_to(ROOT)}/', flush=True)
    from run_nbs import run_nb  # by module name: the workers' IPython shells replace __main__
    res = parallel(run_nb, todo, flags=set(cfg.tst_flags.split()),
                   n_workers=a.n_workers, pause=0.1, method='spawn') if todo else []
    for (s, _), (ok, t) in sorted(zip(todo, res), key=lambda x: -x[1][1]): print(f'{t:7.1f} s  {s}')
    failed = [s for (s, _), (ok, _) in zip(todo, res) if not ok]
    if failed:
        print('Failed On The Following Notebooks:\n' + '\n'.join(f'\t{s}' for s in failed), file=sys.stderr)
        sys.exit(1)

if __name__ == '__main__': main()
