"""The command-line suite: the installed `diffad_*` commands in subprocesses, on small data made here.

Each case checks the exit code; a refusal must also print exactly one stderr line, with no traceback, naming the file or
flag at fault, and leave every file of the run and evaluation folders it touched unchanged (sha1 of each file, before and
after). Independent cases run side by side; cases that need a trained run reuse one tiny run, each on its own copy so that
the checksums of one case cannot be disturbed by another. Prints a table and `N passed, M failed`; exits 1 on a failure.
"""
import csv, json, os, re, shlex, shutil, signal, subprocess, sys, tempfile, threading, time, traceback, hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

COMMANDS = ('diffad_train', 'diffad_eval', 'diffad_calibrate', 'diffad_predict', 'diffad_export')
TIMEOUT = 300                  # seconds any one command may take
T = Path(tempfile.mkdtemp(prefix='diffad_cli_'))
# one thread per command (several run side by side); the CPU even where a GPU is present, so that the time is predictable
ENV = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', PYTHONUNBUFFERED='1', CUDA_VISIBLE_DEVICES='')
KINDS = []                     # defect types of the built-in data, set by make_data
EVAL_FAST = ['--steps', '2']   # few reverse steps wherever the walk does not matter

def train_cmd(data, out, *extra):
    "A diffad_train command line with the tiny preset, category brick unless `extra` names another."
    return ['diffad_train', '--preset', 'tiny', *([] if '--category' in extra else ['--category', 'brick']), '--data_root', data, '--out', out, *extra]

# ---------------------------------------------------------------------------------------------------------- cases
@dataclass
class Case:
    id: str                    # sort key and case number, e.g. '04b'
    name: str
    cmd: str
    expected: int
    actual: object = None
    problems: list = field(default_factory=list)
    stdout: str = ''
    stderr: str = ''
    secs: float = 0.0
    cpu: float = 0.0
    notes: list = field(default_factory=list)   # worth knowing, not a failure
    @property
    def ok(self): return self.actual == self.expected and not self.problems

CASES, LOCK = [], threading.Lock()
RUNNING, STOP = set(), threading.Event()   # the commands running now; set when the suite is interrupted

def _show(args) -> str:
    "A command line as the table shows it: the temporary folder as $T."
    return shlex.join(map(str, args)).replace(str(T), '$T')

def sha_tree(*dirs) -> dict:
    "sha1 of every file under `dirs` (missing folders hold nothing)."
    out = {}
    for d in map(Path, dirs):
        if d.is_file(): out[str(d)] = hashlib.sha1(d.read_bytes()).hexdigest(); continue
        for p in sorted(d.rglob('*')) if d.exists() else []:
            if p.is_file(): out[str(p)] = hashlib.sha1(p.read_bytes()).hexdigest()
    return out

def _diff(before:dict, after:dict) -> str:
    changed = sorted(k for k in before.keys() & after.keys() if before[k] != after[k])
    gone, new = sorted(before.keys() - after.keys()), sorted(after.keys() - before.keys())
    parts = [f"{what}: {', '.join(Path(k).relative_to(T).as_posix() for k in ks[:4])}{' ...' if len(ks) > 4 else ''}"
             for what, ks in (('changed', changed), ('removed', gone), ('added', new)) if ks]
    return '; '.join(parts)

def lines(s:str) -> list: return s.strip().splitlines()

def _killpg(p, sig):
    "Send `sig` to the process group of command `p`, if it is still there."
    try: os.killpg(p.pid, sig)
    except ProcessLookupError: pass

def _spawn(args, timeout, on_start=None):
    """Run `args` in a session of its own, stdout and stderr in files, `on_start(popen)` while it runs;
    (exit code or 'timeout', stdout, stderr, CPU seconds the command used)."""
    with tempfile.TemporaryFile('w+') as fo, tempfile.TemporaryFile('w+') as fe:
        if STOP.is_set(): raise RuntimeError("the suite was interrupted")
        p = subprocess.Popen(list(map(str, args)), stdout=fo, stderr=fe, env=ENV, stdin=subprocess.DEVNULL, start_new_session=True)
        late = threading.Event()
        def kill(): late.set(); _killpg(p, signal.SIGKILL)
        timer = threading.Timer(timeout, kill); timer.start()
        with LOCK: RUNNING.add(p)
        try:
            if on_start: on_start(p)
            _, status, ru = os.wait4(p.pid, 0)
        finally:
            timer.cancel()
            with LOCK: RUNNING.discard(p)
        p.returncode = os.waitstatus_to_exitcode(status)
        fo.seek(0); fe.seek(0)
        return ('timeout' if late.is_set() else p.returncode), fo.read(), fe.read(), ru.ru_utime + ru.ru_stime

def exe(id, name, args, expected=0, *, refusal=False, names=(), contains=(), guard=(), timeout=TIMEOUT) -> Case:
    """Run `args`; check the exit code, and for a refusal the one stderr line, `names` (any of them must appear), `contains`
    (each must appear) and the checksums of the folders in `guard`."""
    c = Case(id, name, _show(args), expected)
    with LOCK: CASES.append(c)
    before = sha_tree(*guard)
    t = time.monotonic()
    c.actual, c.stdout, c.stderr, c.cpu = _spawn(args, timeout)
    if c.actual == 'timeout': c.problems.append(f"ran past {timeout}s")
    c.secs = time.monotonic() - t
    if c.actual != expected and c.actual != 'timeout': c.problems.append(f"exit {c.actual}, expected {expected}")
    err = c.stderr
    if refusal:
        ls = lines(err)
        if 'Traceback' in err: c.problems.append("stderr holds a traceback")
        if len(ls) != 1: c.problems.append(f"stderr has {len(ls)} lines, expected exactly 1")
    if names and not any(n in err for n in names): c.problems.append(f"stderr names none of {list(names)}")
    for s in contains:
        if s not in err: c.problems.append(f"stderr lacks {s!r}")
    if guard:
        d = _diff(before, sha_tree(*guard))
        if d: c.problems.append(f"earlier results changed ({d})")
    return c

def check(c:Case, cond, problem:str):
    "Add `problem` to case `c` unless `cond` holds."
    if not cond: c.problems.append(problem)
    return bool(cond)

def broken(id, name, problem):
    "A failed case without a command (a prerequisite or the suite itself broke)."
    c = Case(id, name, '-', 0, 'n/a', [problem])
    with LOCK: CASES.append(c)

# ---------------------------------------------------------------------------------------------------------- data
def make_data():
    "The built-in data at 16 px, and the variants the cases need, each a whole MVTec-layout root of its own."
    from PIL import Image
    from diffad.data import make_builtin_dataset
    make_builtin_dataset(T / 'data', 'brick', size=16, n_train=8, n_test=12, seed=0)
    cat = T / 'data' / 'brick'
    kinds = sorted(p.name for p in (cat / 'test').iterdir() if p.is_dir() and p.name != 'good')
    assert len(kinds) >= 3, kinds
    def variant(name):
        shutil.copytree(T / 'data', T / name); return T / name / 'brick'
    # 2 / 13: a defective test image without its mask
    v = variant('d_nomask'); (v / 'ground_truth' / kinds[0] / '000_mask.png').unlink()
    # 3: a test set of good images only
    v = variant('d_goodonly'); shutil.rmtree(v / 'ground_truth')
    for k in kinds: shutil.rmtree(v / 'test' / k)
    # 4: the same data with one more training image
    v = variant('d_plus1'); shutil.copy(cat / 'test' / 'good' / '000.png', v / 'train' / 'good' / '900.png')
    # 7: train/good in five image formats and a text file
    v = variant('d_formats'); g = v / 'train' / 'good'
    for src, ext in zip(sorted(g.glob('*.png'))[1:5], ('.webp', '.gif', '.tif', '.bmp')):
        im = Image.open(src).convert('RGB'); src.unlink()
        im.save(src.with_suffix(ext), **({'lossless': True} if ext == '.webp' else {}))
    (g / 'notes.txt').write_text('lot 42: photographed on Tuesday\n')
    # 8: a 300x100 defective image whose defect lies at its left edge, outside the centre crop
    v = variant('d_edge'); (v / 'test' / 'edge').mkdir(); (v / 'ground_truth' / 'edge').mkdir()
    Image.open(cat / 'test' / 'good' / '000.png').convert('RGB').resize((300, 100)).save(v / 'test' / 'edge' / '000.png')
    m = Image.new('L', (300, 100), 0); m.paste(255, (0, 0, 20, 100)); m.save(v / 'ground_truth' / 'edge' / '000_mask.png')
    # 9: an all-black mask
    v = variant('d_blackmask'); mk = v / 'ground_truth' / kinds[1] / '000_mask.png'
    Image.new('L', Image.open(mk).size, 0).save(mk)
    # 13: a truncated training image, an empty train/good, a mask of the wrong size
    v = variant('d_truncimg'); p = v / 'train' / 'good' / '003.png'; b = p.read_bytes(); p.write_bytes(b[:len(b) * 2 // 5])
    v = variant('d_emptytrain'); shutil.rmtree(v / 'train' / 'good'); (v / 'train' / 'good').mkdir()
    v = variant('d_masksize'); mk = v / 'ground_truth' / kinds[2] / '000_mask.png'; Image.open(mk).resize((8, 8)).save(mk)
    # 1: unlabelled images to inspect: good and defective test images, a non-square .webp and a .gif
    P = T / 'inspect'; P.mkdir()
    for i in range(3): shutil.copy(cat / 'test' / 'good' / f'00{i}.png', P / f'good_{i}.png')
    for k in kinds[:2]: shutil.copy(cat / 'test' / k / '000.png', P / f'{k}_000.png')
    Image.open(cat / 'test' / 'good' / '003.png').convert('RGB').resize((40, 24)).save(P / 'wide.webp', lossless=True)
    Image.open(cat / 'test' / kinds[2] / '000.png').convert('RGB').resize((20, 20)).convert('P').save(P / 'part.gif')
    return kinds

def copy_run(src:Path, name:str) -> Path:
    dst = T / 'runs' / name; shutil.copytree(src, dst); return dst

# ---------------------------------------------------------------------------------------------------------- chains
D = lambda name='data': T / name          # a data root
R1 = T / 'runs' / 'main'                  # the one run most cases reuse

def fresh(name) -> Path: return T / 'out' / name

def train_refusal(id, name, extra, names=(), contains=(), data='data'):
    out = fresh(id)
    c = exe(id, name, train_cmd(D(data), out, *extra), 2, refusal=True, names=names, contains=contains)
    left = sha_tree(out)
    check(c, not left and not out.exists(), f"the refused command left {', '.join(Path(k).relative_to(out).as_posix() for k in left) or 'the folder'} "
                                           "in its fresh --out folder (a rerun into it after the fix would be refused)")

def chain_help():
    c = exe('10a', 'eval --help lists no training flag', ['diffad_eval', '--help'], 0)
    for f in ('--lr', '--batch_size', '--epochs', '--noise'): check(c, f not in c.stdout, f"lists {f}")
    c = exe('10c', 'train --help: preset values, noises', ['diffad_train', '--help'], 0)
    flat = ' '.join(c.stdout.split())
    for s in ('[paper 224, cpu 64, tiny 16]', 'gmm(K=128'): check(c, s in flat, f"--help lacks {s!r}")

def chain_sigint():
    out = fresh('sigint')
    args = train_cmd(D(), out, '--train_steps', '5000')
    c = Case('06', 'Ctrl-C after the first checkpoint', _show(args) + '  (SIGINT)', 130)
    with LOCK: CASES.append(c)
    ck = out / 'checkpoints' / 'last.pt'
    def interrupt(p):   # Ctrl-C: SIGINT to the command's process group, once its first checkpoint is in place
        t = time.monotonic()
        while not ck.exists() and p.poll() is None and time.monotonic() - t < TIMEOUT: time.sleep(0.05)
        if p.poll() is None and ck.exists(): _killpg(p, signal.SIGINT)
        else: c.problems.append("no checkpoint appeared while training ran")
    t = time.monotonic()
    c.actual, c.stdout, c.stderr, c.cpu = _spawn(args, TIMEOUT, interrupt)
    c.secs = time.monotonic() - t
    if c.actual != 130: c.problems.append(f"exit {c.actual}, expected 130")
    ls = lines(c.stderr); last = ls[-1] if ls else ''
    check(c, 'Traceback' not in c.stderr, "stderr holds a traceback")
    check(c, 'interrupted' in last, "last stderr line does not say interrupted")
    check(c, 'checkpoint' in last and str(ck) in last, "last stderr line does not name the kept checkpoint")
    check(c, 'diffad_train' in last and '--resume' in last, "last stderr line gives no resume command with --resume")
    try:
        from diffad.runs import load_checkpoint
        state = load_checkpoint(ck)
        check(c, isinstance(state, dict) and state, "the checkpoint loaded as something other than a non-empty dict")
    except Exception as e: c.problems.append(f"the checkpoint does not load: {type(e).__name__}: {str(e)[:200]}")

def chain_train_refusals():
    train_refusal('12', 'malformed JSON flag', ['--noise', 'gmm', '--noise_kwargs', '{K: 8}'], contains=('JSON',))
    train_refusal('13a', 'truncated image in train/good', [], names=('003.png',), data='d_truncimg')
    train_refusal('13d', 'empty train/good', [], names=('train/good',), data='d_emptytrain')
    train_refusal('13e', 'unknown --category', ['--category', 'nosuch'], names=('nosuch',))

def chain_train_refusals2():
    out = fresh('13f')
    exe('13f', 'missing --data_root', train_cmd(T / 'no_such_root', out), 2, refusal=True, names=('no_such_root',))
    train_refusal('13g', 'unknown --noise', ['--noise', 'pink'], names=('pink',))
    train_refusal('13k', 'unknown noise parameter', ['--noise', 'gmm', '--noise_kwargs', '{"k": 3}'], names=("'k'", '"k"', 'noise_kwargs'))

def chain_sigint_then_unfinished():
    chain_sigint(); chain_unfinished()

def chain_nomask_train():
    run = T / 'runs' / 'nomask'
    c = exe('02a', 'train: a test image has no mask', train_cmd(D('d_nomask'), run, '--train_steps', '2'), 0)
    if c.actual != 0: return
    exe('02b', 'eval: that image has no mask', ['diffad_eval', '--run', run, *EVAL_FAST], 2, refusal=True,
        names=(f'{KINDS[0]}/000.png',), guard=[run])

def chain_formats():
    c = exe('07', 'train/good in 5 formats + notes.txt', train_cmd(D('d_formats'), T / 'runs' / 'formats', '--train_steps', '2'), 0)
    counts = [list(map(int, re.findall(r'\d+', l))) for l in lines(c.stdout) if 'train' in l.lower()]
    check(c, any(8 in n or sum(n) == 8 for n in counts), f"stdout does not count the 8 training images: {[l for l in lines(c.stdout) if 'train' in l.lower()]}")
    n = (c.stderr + c.stdout).count('notes.txt')
    if check(c, n, "no warning names notes.txt") and n > 1: c.notes.append(f"the warning naming notes.txt is printed {n} times")

def chain_main():
    c = exe('00', 'train the shared tiny run', train_cmd(D(), R1), 0)
    if c.actual != 0:
        broken('00z', 'cases that need the run', 'skipped: training the shared run failed'); return
    for f in (chain_predict, chain_overwrite, chain_evals, chain_eval_more, chain_blackmask, chain_goodonly_edge, chain_checkpoints,
              chain_run_overwrite_notes, chain_eval_classes, chain_calibrate_classes, chain_predict_classes, chain_export, *eval_refusals()):
        submit(f)

def chain_predict():
    run = copy_run(R1, 'predict'); P = T / 'inspect'
    exe('01a', 'predict with uncalibrated --steps 2', ['diffad_predict', '--run', run, '--steps', '2', P], 2, refusal=True,
        names=('diffad_calibrate',), guard=[run])
    cal = lambda: json.loads((run / 'calibration.json').read_text()) if (run / 'calibration.json').exists() else {}
    n0 = len(cal())
    c = exe('01b', 'calibrate --steps 2 (held-out images)', ['diffad_calibrate', '--run', run, '--steps', '2'], 0)
    check(c, len(cal()) > n0, "calibration.json gained no entry")
    c = exe('01c', 'predict a folder (png, webp, gif)', ['diffad_predict', '--run', run, '--steps', '2', P], 0)
    if c.actual == 0: check_predictions(c, run, P)
    n1 = len(cal())
    c = exe('01d', 'calibrate --good FOLDER', ['diffad_calibrate', '--run', run, '--steps', '3', '--good', D() / 'brick' / 'test' / 'good'], 0)
    check(c, len(cal()) > n1, "calibration.json gained no entry")

def check_predictions(c:Case, run:Path, P:Path):
    from PIL import Image
    outs = sorted(p.parent for p in (run / 'predict').glob('*/predictions.csv'))
    if not check(c, len(outs) == 1, f"expected one predictions.csv under run/predict/, found {len(outs)}"): return
    out = outs[0]; imgs = sorted(p for p in P.iterdir())
    rows = list(csv.DictReader(open(out / 'predictions.csv')))
    js = json.loads((out / 'predictions.json').read_text()) if check(c, (out / 'predictions.json').exists(), "no predictions.json") else {}
    check(c, len(rows) == len(imgs), f"predictions.csv has {len(rows)} rows for {len(imgs)} images")
    check(c, js.get('n_images') == len(imgs), f"predictions.json n_images={js.get('n_images')}, expected {len(imgs)}")
    seen = set()
    for r in rows:
        src = Path(r['image_path']); seen.add(src.name)
        want = Image.open(src).size
        for col in ('anomaly_map', 'pred_mask', 'overlay'):
            f = out / r.get(col, '')
            if not check(c, r.get(col) and f.is_file() and f.suffix == '.png', f"{src.name}: no {col} PNG"): continue
            got = Image.open(f).size
            if col == 'overlay':   # enlarged by a whole factor to be read, with a text band above the image
                k = got[0] // want[0]
                check(c, k >= 1 and got[0] == k * want[0] and got[1] > k * want[1], f"{src.name}: overlay is {got}, not a whole multiple of the image {want} plus a band")
            else: check(c, got == want, f"{src.name}: {col} is {got}, the image {want}")
    check(c, seen == {p.name for p in imgs}, f"images predicted {sorted(seen)} != given {[p.name for p in imgs]}")
    last = (lines(c.stdout) or [''])[-1]; k = js.get('n_flagged')
    check(c, re.match(rf'{len(imgs)} images\b', last) and f'{k} flagged' in last and str(out) in last,
          f"last stdout line is not '{len(imgs)} images, {k} flagged ... {out}': {last!r}")

def chain_overwrite():
    run = copy_run(R1, 'overwrite')
    exe('04a', 'train into a finished run, other config', train_cmd(D(), run, '--lr', '0.01'), 2, refusal=True,
        contains=('already holds a run',), guard=[run])
    exe('04b', '--resume with another config', train_cmd(D(), run, '--lr', '0.01', '--resume'), 2, refusal=True,
        contains=('cannot resume',), guard=[run])
    exe('04c', '--resume with another --data_root', train_cmd(D('d_plus1'), run, '--resume'), 2, refusal=True, guard=[run])
    before = sha_tree(run)
    c = exe('04d', '--overwrite', train_cmd(D(), run, '--lr', '0.01', '--overwrite'), 0)
    if c.actual == 0:
        cfg = json.loads((run / 'config.json').read_text())
        check(c, cfg.get('lr') == 0.01, f"config.json lr={cfg.get('lr')}, expected 0.01")
        ck = str(run / 'checkpoints' / 'last.pt')
        check(c, ck in before and before[ck] != sha_tree(run).get(ck), "the checkpoint was not replaced by a new run")

def chain_evals():
    run = copy_run(R1, 'evals'); first = run / 'eval' / 'ddpm-2-t0_10-f11-ema'
    c = exe('05a', 'eval --steps 2', ['diffad_eval', '--run', run, *EVAL_FAST], 0)
    check(c, (first / 'metrics.json').exists(), f"no {first.relative_to(run)}/metrics.json")
    exe('05b', 'eval again, same settings', ['diffad_eval', '--run', run, *EVAL_FAST], 2, refusal=True,
        contains=('already holds an evaluation',), guard=[run])
    before = sha_tree(first)
    c = exe('05c', 'eval with other settings', ['diffad_eval', '--run', run, '--sampler', 'ddim', *EVAL_FAST], 0)
    check(c, (run / 'eval' / 'ddim-2-t0_10-f11-ema' / 'metrics.json').exists(), "no eval/ddim-2-t0_10-f11-ema/metrics.json")
    check(c, sha_tree(first) == before, f"the first evaluation changed ({_diff(before, sha_tree(first))})")
    exe('05d', 'eval --overwrite', ['diffad_eval', '--run', run, *EVAL_FAST, '--overwrite'], 0)

def chain_eval_more():
    run = copy_run(R1, 'steps_all')
    c = exe('11', 'eval --steps all', ['diffad_eval', '--run', run, '--steps', 'all'], 0)
    if c.actual == 0:
        m = sorted(run.glob('eval/*/metrics.json'), key=lambda p: p.stat().st_mtime)[-1]
        t0 = json.loads((run / 'config.json').read_text())['detect']['t0']
        n = json.loads(m.read_text()).get('n_evals')
        check(c, n == t0, f"{m.parent.name}: n_evals={n}, expected t0={t0}")
    exe('10b', 'eval with a training flag', ['diffad_eval', '--run', run, '--lr', '5'], 2, refusal=True, names=('--lr',), guard=[run])

def metrics_of(run:Path) -> dict:
    ms = list(run.glob('eval/*/metrics.json'))
    return json.loads(ms[0].read_text()) if len(ms) == 1 else {}

def chain_goodonly_edge():
    run = copy_run(R1, 'goodonly')
    c = exe('03', 'eval: only good test images', ['diffad_eval', '--run', run, '--data_root', D('d_goodonly'), *EVAL_FAST], 0)
    if c.actual == 0:
        check(c, len(list(run.glob('eval/*/scores.csv'))) == 1, "no scores.csv")
        m = metrics_of(run); absent = m.get('absent') or {}
        for k in ('i_auroc', 'i_f1max'):
            check(c, k in m and m[k] is None, f"metrics.json {k}={m.get(k, 'missing')!r}, expected null")
            check(c, isinstance(absent.get(k), str) and absent[k], f"absent gives no reason for {k}")
    run = copy_run(R1, 'edge')
    exe('08', 'eval: defect outside the 16/16 centre crop', ['diffad_eval', '--run', run, '--data_root', D('d_edge'), *EVAL_FAST], 2,
        refusal=True, names=('edge/000.png',), guard=[run])

def chain_blackmask():
    run = copy_run(R1, 'blackmask'); mask = f'{KINDS[1]}/000_mask.png'
    exe('09a', 'eval: an all-black mask', ['diffad_eval', '--run', run, '--data_root', D('d_blackmask'), *EVAL_FAST], 2,
        refusal=True, names=(mask,), guard=[run])
    c = exe('09b', 'the same with --pixel_labels false', ['diffad_eval', '--run', run, '--data_root', D('d_blackmask'), *EVAL_FAST,
                                                         '--pixel_labels', 'false'], 0)
    if c.actual == 0:
        m = metrics_of(run); absent = m.get('absent') or {}
        for k in ('p_auroc', 'p_ap', 'p_f1max', 'aupro'):
            check(c, k in m and m[k] is None, f"metrics.json {k}={m.get(k, 'missing')!r}, expected null")
            check(c, isinstance(absent.get(k), str) and absent[k], f"absent gives no reason for {k}")

def eval_refusal(id, name, flags, names):
    run = copy_run(R1, id)
    exe(id, name, ['diffad_eval', '--run', run, *flags], 2, refusal=True, names=names, guard=[run])

def eval_refusals() -> list:
    "The one-command eval refusals, each on its own copy of the run (called once the data, and so KINDS, exist)."
    cases = (('13b', 'eval: a missing mask', ['--data_root', D('d_nomask')], (f'{KINDS[0]}/000.png', f'{KINDS[0]}/000_mask.png')),
             ('13c', 'eval: mask size differs from image', ['--data_root', D('d_masksize')], (f'{KINDS[2]}/000_mask.png', f'{KINDS[2]}/000.png')),
             ('13h', '--t0 out of range', ['--t0', '5000'], ('t0',)),
             ('13i', '--steps greater than t0', ['--steps', '50'], ('steps',)),
             ('13j', '--filter_size 0', ['--filter_size', '0', *EVAL_FAST], ('filter_size',)))
    return [lambda a=a: eval_refusal(*a) for a in cases]

class _Code:
    "Pickles as a call of os.system: loading it with pickle would run the command."
    def __init__(self, cmd): self.cmd = cmd
    def __reduce__(self): return (os.system, (self.cmd,))

def chain_checkpoints():
    import torch
    run = copy_run(R1, 'trunc_ckpt'); ck = run / 'checkpoints' / 'last.pt'
    b = ck.read_bytes(); ck.write_bytes(b[:len(b) // 2])
    exe('13l', 'eval: a truncated checkpoint', ['diffad_eval', '--run', run, *EVAL_FAST], 2, refusal=True, names=('last.pt',), guard=[run])
    run = copy_run(R1, 'pickle_ckpt'); ck = run / 'checkpoints' / 'last.pt'; marker = T / 'PICKLED_CODE_RAN'
    state = torch.load(ck, map_location='cpu', weights_only=True); state['extra'] = _Code(f'touch {shlex.quote(str(marker))}')
    torch.save(state, ck)
    c = exe('13m', 'eval: a checkpoint carrying pickled code', ['diffad_eval', '--run', run, *EVAL_FAST], 2, refusal=True,
            names=('last.pt',), guard=[run])
    check(c, not marker.exists(), "the pickled code ran")


# ---------------------------------------------------------------------------------------------------------- bad input, by class
def usage(id, cmd):
    "A bare command: its usage on stderr, exit 2, nothing else done."
    c = exe(id, f'bare {cmd} prints its usage', [cmd], 2)
    check(c, c.stderr.startswith(f'usage: {cmd}') and 'Traceback' not in c.stderr, f"stderr does not start with 'usage: {cmd}'")

def chain_usage():
    for i, cmd in enumerate(COMMANDS): usage(f'20{"abcde"[i]}', cmd)
    c = exe('20f', 'predict --help lists only its flags', ['diffad_predict', '--help'], 0)
    for f in ('--frr', '--pixel_frr', '--holdout', '--data_root', '--lr'): check(c, f not in c.stdout, f"lists {f}")
    c = exe('20g', 'calibrate --help lists only its flags', ['diffad_calibrate', '--help'], 0)
    for f in ('--holdout', '--data_root', '--category', '--lr'): check(c, f not in c.stdout, f"lists {f}")
    check(c, '--frr' in c.stdout and '--good' in c.stdout, "does not list --frr and --good")
    exe('20h', 'train without --out', ['diffad_train', '--preset', 'tiny', '--data_root', D()], 2, refusal=True, names=('--out',))

def chain_train_classes():
    f = T / 'a_file.txt'; f.write_text('mine')
    exe('21a', 'train --out is an existing file', train_cmd(D(), f), 2, refusal=True, names=(str(f),), guard=[f])
    exe('21b', 'train --out below a file', train_cmd(D(), f / 'run'), 2, refusal=True, names=(str(f),), guard=[f])
    exe('21c', 'train --out where nothing can be created', train_cmd(D(), '/proc/diffad_run'), 2, refusal=True, names=('/proc',))
    exe('21d', 'train --out with a 300-byte name', train_cmd(D(), T / ('r' * 300)), 2, refusal=True, contains=('300 bytes',))
    train_refusal('21e', '--batch_size larger than the data', ['--batch_size', '64'], names=('batch_size',))
    train_refusal('21f', '--in_channels 1 on RGB data', ['--in_channels', '1'], names=('in_channels',))
    train_refusal('21g', '--device cuda without CUDA', ['--device', 'cuda'], names=("'cuda'",))
    train_refusal('21h', '--device gpu0 (not a device)', ['--device', 'gpu0'], names=('device',))
    train_refusal('21i', '--compile_backend nosuch', ['--compile_backend', 'nosuch'], names=('compile_backend',))
    train_refusal('21j', '--holdout 1 (range)', ['--holdout', '1'], names=('holdout',))
    train_refusal('21k', '--lr nan', ['--lr', 'nan'], names=('lr',))
    train_refusal('21l', '--resume into a new folder', ['--resume'], contains=('nothing to resume',))
    train_refusal('21m', '--resume --overwrite together', ['--resume', '--overwrite'], contains=('choose one',))

def chain_user_folder():
    u = T / 'users_folder'; u.mkdir(); (u / 'config.json').write_text('{"mine": true}\n'); (u / 'eval').mkdir(); (u / 'eval' / 'notes.txt').write_text('mine')
    for id, extra in (('22a', []), ('22b', ['--resume']), ('22c', ['--overwrite'])):
        exe(id, f"train into a user's folder holding config.json {' '.join(extra)}".strip(), train_cmd(D(), u, *extra), 2, refusal=True,
            contains=('did not write',), guard=[u])

def chain_run_overwrite_notes():
    run = copy_run(R1, 'notes'); e = run / 'eval'
    c = exe('22d', 'eval, then a note in eval/', ['diffad_eval', '--run', run, *EVAL_FAST], 0)
    if c.actual != 0: return
    (e / 'notes.txt').write_text('mine'); (run / 'my_plot.png').write_bytes(b'\x89PNG mine')
    c = exe('22e', "--overwrite a run: the user's files stay", train_cmd(D(), run, '--overwrite'), 0)
    check(c, (e / 'notes.txt').is_file() and (e / 'notes.txt').read_text() == 'mine', "eval/notes.txt was touched")
    check(c, (run / 'my_plot.png').read_bytes() == b'\x89PNG mine', "my_plot.png was touched")
    check(c, not any(d.is_dir() for d in e.iterdir()), f"the replaced model's evaluations are still there: {[d.name for d in e.iterdir()]}")

def chain_eval_classes():
    run = copy_run(R1, 'eval_classes'); f = T / 'eval_file.txt'; f.write_text('mine')
    u = T / 'eval_user'; u.mkdir(); (u / 'metrics.json').write_text('{"mine": 1}')
    for id, name, flags, names in (('23a', 'eval --out is an existing file', ['--out', f], (str(f),)),
                                   ('23b', "eval --out a user's folder", ['--out', u], ('did not write',)),
                                   ('23c', 'eval --out where nothing can be created', ['--out', '/proc/diffad_eval'], ('/proc',)),
                                   ('23d', 'eval --out with a 300-byte name', ['--out', T / ('e' * 300)], ('300 bytes',)),
                                   ('23e', 'eval --holdout (fixed by training)', ['--holdout', '0.5'], ('--holdout',)),
                                   ('23f', 'eval --frr (not used by eval)', ['--frr', '0.1'], ('--frr',)),
                                   ('23g', 'eval --device cuda without CUDA', ['--device', 'cuda'], ("'cuda'",)),
                                   ('23h', 'eval --compile_backend nosuch', ['--compile_backend', 'nosuch'], ('compile_backend',)),
                                   ('23i', 'eval --run that does not exist', ['--run', T / 'no_run'], ('no_run',))):
        exe(id, name, ['diffad_eval', '--run', run, *EVAL_FAST, *flags], 2, refusal=True, names=names, guard=[run, u, f])

def chain_calibrate_classes():
    run = copy_run(R1, 'cal_classes'); tg = D() / 'brick' / 'train' / 'good'
    copy = T / 'good_with_copy'; shutil.copytree(D() / 'brick' / 'test' / 'good', copy); shutil.copy(json.loads((run / 'split.json').read_text())['train'][0][0], copy / 'zz_renamed.png')
    for id, name, flags, names in (('24a', '--good train/good (images it trained on)', ['--good', tg], ('trained on',)),
                                   ('24b', '--good with a renamed training image', ['--good', copy], ('zz_renamed.png',)),
                                   ('24c', '--holdout 0.5 after training', ['--holdout', '0.5'], ('--holdout',)),
                                   ('24d', '--frr 1.5', ['--frr', '1.5'], ('frr',)),
                                   ('24e', '--good a text file', ['--good', T / 'cal_file.txt'], ('cal_file.txt',)),
                                   ('24f', '--good an empty folder', ['--good', T / 'empty_dir'], ('empty_dir',))):
        (T / 'empty_dir').mkdir(exist_ok=True); (T / 'cal_file.txt').write_text('mine')
        exe(id, name, ['diffad_calibrate', '--run', run, *EVAL_FAST, *flags], 2, refusal=True, names=names, guard=[run, copy])
    (run / 'calibration.json').write_text('{"ddpm-2-t0_10-f11-ema": {"image": "high", "pixel": 1}}')
    for id, cmd in (('24g', ['diffad_eval', '--run', run, *EVAL_FAST]), ('24h', ['diffad_predict', '--run', run, *EVAL_FAST, T / 'inspect'])):
        exe(id, f'{cmd[0]}: a threshold that is not a number', cmd, 2, refusal=True, names=('calibration.json',), guard=[run])

def chain_split():
    "The held-out images are the recorded ones: images added later change nothing, a changed held-out file is refused."
    data = T / 'd_split'; shutil.copytree(D(), data); run = T / 'runs' / 'split'
    c = exe('25a', 'train records its split', train_cmd(data, run), 0)
    if c.actual != 0: return
    held = [p for p, _ in json.loads((run / 'split.json').read_text())['holdout']]
    shutil.copy(D() / 'brick' / 'test' / 'good' / '001.png', data / 'brick' / 'train' / 'good' / '950.png')
    c = exe('25b', 'calibrate after images were added to train/good', ['diffad_calibrate', '--run', run, *EVAL_FAST], 0)
    th = json.loads((run / 'calibration.json').read_text()).get('ddpm-2-t0_10-f11-ema', {})
    check(c, th.get('n_good') == len(held) == 2, f"calibrated on {th.get('n_good')} images, the recorded held-out ones are {len(held)}")
    Path(held[0]).write_bytes(Path(held[0]).read_bytes() + b'\0')
    exe('25c', 'calibrate: a held-out file changed since training', ['diffad_calibrate', '--run', run, '--steps', '3'], 2, refusal=True,
        names=(Path(held[0]).name,), guard=[run])

def chain_predict_classes():
    run = copy_run(R1, 'pred_classes'); P = T / 'inspect'
    c = exe('26a', 'calibrate for the predict cases', ['diffad_calibrate', '--run', run, *EVAL_FAST], 0)
    if c.actual != 0: return
    pc = lambda *a: ['diffad_predict', '--run', run, *EVAL_FAST, *a]
    f = T / 'pred_file.txt'; f.write_text('mine'); u = T / 'pred_user'; u.mkdir(); (u / 'report.csv').write_text('mine')
    bad = T / 'inspect_bad'; shutil.copytree(P, bad); b = (P / 'good_0.png').read_bytes(); (bad / 'zz_last.png').write_bytes(b[:len(b) // 3])
    empty = T / 'inspect_empty'; empty.mkdir()
    for id, name, args, names in (('26b', 'predict --out inside the input folder', [P, '--out', P / 'results'], ('lies inside',)),
                                  ('26c', 'predict --out is an existing file', [P, '--out', f], (str(f),)),
                                  ('26d', "predict --out a user's folder", [P, '--out', u], ('did not write',)),
                                  ('26e', 'predict: a corrupt last image (nothing scored)', [bad, '--out', T / 'pred_bad'], ('zz_last.png',)),
                                  ('26f', 'predict --frr (not used)', [P, '--frr', '0.2'], ('--frr',)),
                                  ('26g', 'predict a folder without images', [empty], ('inspect_empty',)),
                                  ('26h', 'predict a path that does not exist', [T / 'nowhere'], ('nowhere',)),
                                  ('26i', 'predict --device gpu0', [P, '--device', 'gpu0'], ('device',))):
        exe(id, name, pc(*args), 2, refusal=True, names=names, guard=[run, P, f, u])
    c = Case('26e2', 'the refused predict wrote nothing', '-', 0, 0)
    with LOCK: CASES.append(c)
    check(c, not (T / 'pred_bad').exists(), "the corrupt-image predict left its --out folder")
    out = T / 'pred_out'
    c = exe('26j', 'predict, the same image twice', pc(P, P / 'good_0.png', '--out', out), 0)
    n = len(list(P.iterdir()))
    if c.actual == 0: check(c, len(list(csv.DictReader(open(out / 'predictions.csv')))) == n, f"not {n} rows for {n} distinct images")
    (out / 'maps' / 'stale.png').write_bytes(b'x')
    c = exe('26k', 'predict --overwrite replaces the folder whole', pc(P, '--out', out, '--overwrite'), 0)
    check(c, not (out / 'maps' / 'stale.png').exists(), "a file of the old folder is still there")
    again = T / 'inspect_again'; shutil.copytree(P, again); shutil.copytree(out, again / 'last_results')
    c = exe('26l', "predict a folder holding last time's results", pc(again, '--out', T / 'pred_again'), 0)
    if c.actual == 0:
        rows = list(csv.DictReader(open(T / 'pred_again' / 'predictions.csv')))
        check(c, len(rows) == n, f"{len(rows)} rows: diffad's own maps/overlays were read as parts ({n} images given)")
        check(c, 'were not read' in c.stderr, "no warning says diffad's own results were skipped")

def chain_unfinished():
    "A run stopped part-way (case 06's): eval and calibrate say so."
    run = fresh('sigint')
    if not (run / 'checkpoints' / 'last.pt').exists(): return broken('27z', 'unfinished-run cases', 'case 06 left no checkpoint')
    for id, cmd in (('27a', 'diffad_eval'), ('27b', 'diffad_calibrate')):
        c = exe(id, f'{cmd} on an unfinished run says so', [cmd, '--run', run, *EVAL_FAST], 0)
        check(c, 'unfinished run' in c.stderr, "stderr does not say the run is unfinished")

def scores_of(out:Path) -> dict:
    return {Path(r['image_path']).name: (float(r['pred_score']), r['pred_label']) for r in csv.DictReader(open(out / 'predictions.csv'))}

def chain_export():
    "Export a calibrated run; the exported network predicts as the run does, in every backend."
    run = copy_run(R1, 'export'); P = T / 'inspect'
    c = exe('28a', 'calibrate for the export cases', ['diffad_calibrate', '--run', run, *EVAL_FAST], 0)
    if c.actual != 0: return
    u = T / 'export_user'; u.mkdir(); (u / 'readme.txt').write_text('mine')
    exe('28b', 'export --format tflite', ['diffad_export', '--run', run, '--format', 'tflite', '--out', T / 'ex_x'], 2, refusal=True, names=('tflite',))
    exe('28c', "export --out a user's folder", ['diffad_export', '--run', run, *EVAL_FAST, '--out', u], 2, refusal=True, names=(str(u),), guard=[u, run])
    ex = T / 'exports' / 'onnx'
    c = exe('28d', 'export to ONNX', ['diffad_export', '--run', run, *EVAL_FAST, '--out', ex], 0)
    if c.actual != 0: return
    ref = T / 'pred_ref'
    c = exe('28e', 'predict with the run (reference)', ['diffad_predict', '--run', run, *EVAL_FAST, P, '--out', ref], 0)
    if c.actual != 0: return
    ref32 = T / 'pred_ref32'    # the exported graph is float32; amp='auto' is bf16 for detection on a CPU with native bf16
    c = exe('28l', 'predict with the run in float32 (reference of the graph)', ['diffad_predict', '--run', run, *EVAL_FAST, '--amp', 'none', P, '--out', ref32], 0)
    if c.actual != 0: return
    for id, backend, ref_out in (('28f', 'onnxruntime', ref32), ('28g', 'openvino', ref32), ('28h', 'torch', ref)):
        out = T / f'pred_{backend}'
        c = exe(id, f'predict --model --backend {backend}', ['diffad_predict', '--model', ex, '--backend', backend, P, '--out', out], 0)
        if c.actual != 0: continue
        got, want = scores_of(out), scores_of(ref_out)
        worst = max(abs(got[k][0] - v[0]) / abs(v[0]) for k, v in want.items()) if got.keys() == want.keys() else float('inf')
        check(c, worst <= 1e-4, f"scores differ from the run's by {worst:.3g} (relative)")
        check(c, all(got[k][1] == v[1] for k, v in want.items() if k in got), "a label differs from the run's")
    exe('28i', 'predict --model without --out', ['diffad_predict', '--model', ex, P], 2, refusal=True, names=('--out',), guard=[ex])
    exe('28j', 'predict with --run and --model', ['diffad_predict', '--run', run, '--model', ex, P, '--out', T / 'pred_both'], 2, refusal=True,
        names=('--model',), guard=[ex, run])
    bad = T / 'exports' / 'tampered'; shutil.copytree(ex, bad); g = bad / 'eps.onnx'; b = bytearray(g.read_bytes()); b[len(b) // 2] ^= 1; g.write_bytes(bytes(b))
    exe('28k', 'predict --model with a tampered graph', ['diffad_predict', '--model', bad, P, '--out', T / 'pred_tampered'], 2, refusal=True,
        names=('eps.onnx',), guard=[bad])

def chain_noise_auto():
    "diffad_train --noise auto: the noise chosen on validation, every candidate recorded; a resume reuses the choice."
    train_refusal('29a', '--noise auto with --noise_kwargs', ['--noise', 'auto', '--noise_kwargs', '{"K": 4}'], names=('noise_kwargs',))
    train_refusal('29b', '--noise auto --noise_screen 1.5', ['--noise', 'auto', '--noise_screen', '1.5'], names=('noise_screen',))
    run = T / 'runs' / 'auto'
    c = exe('29c', 'train --noise auto (tiny)', train_cmd(D(), run, '--noise', 'auto', '--train_steps', '8'), 0)
    if c.actual != 0: return
    rec = json.loads((run / 'noise_selection.json').read_text()); saved = json.loads((run / 'config.json').read_text())
    check(c, len(rec['candidates']) == 6 and all(r['noise'] and 0 <= r['criterion'] <= 1 for r in rec['candidates']), f"candidates: {rec['candidates']}")
    check(c, (saved['noise'], saved['noise_kwargs']) == (rec['chosen']['noise'], rec['chosen']['noise_kwargs']), f"run's noise {saved['noise']} is not the choice {rec['chosen']}")
    check(c, (run / 'calibration.json').is_file(), "no calibration.json after training with a holdout")
    exe('29d', 'train --noise auto --resume reuses the choice', train_cmd(D(), run, '--noise', 'auto', '--train_steps', '8', '--resume'), 0,
        guard=[run / 'noise_candidates', run / 'noise_selection.json'])
    exe('29e', 'eval the chosen-noise run', ['diffad_eval', '--run', run, *EVAL_FAST], 0)

# ---------------------------------------------------------------------------------------------------------- driver
POOL = ThreadPoolExecutor(max_workers=max(3, (os.cpu_count() or 2) + 1))
FUTURES = []

def _guarded(f):
    try: f()
    except Exception as e:
        broken(f'99-{f.__name__}', f'suite error in {f.__name__}', f"{type(e).__name__}: {e}")
        traceback.print_exc()

def submit(f):
    with LOCK: FUTURES.append(POOL.submit(_guarded, f))

def table():
    rows = [(c.id, c.name, c.cmd, str(c.expected), str(c.actual), f'{c.secs:.0f}/{c.cpu:.0f}', 'pass' if c.ok else 'FAIL')
            for c in sorted(CASES, key=lambda c: c.id)]
    head = ('case', 'name', 'command', 'exp', 'got', 'wall/cpu s', 'result')
    w = [max(len(r[i]) for r in rows + [head]) for i in range(len(head) - 1)]
    fmt = lambda r: '  '.join(s.ljust(n) for s, n in zip(r[:-1], w)) + '  ' + r[-1]
    print(fmt(head)); print('-' * (sum(w) + 2 * len(w) + 6))
    for r in rows: print(fmt(r))

def main():
    t = time.monotonic()
    missing = [c for c in COMMANDS if not shutil.which(c)]
    if missing: print(f"FAIL: not on PATH: {', '.join(missing)}"); return 1
    submit(chain_help); submit(chain_usage)   # need no data
    global KINDS
    KINDS[:] = make_data()
    print(f"cli suite: data in {T}, commands from {Path(shutil.which('diffad_train')).parent}", flush=True)
    for f in (chain_main, chain_sigint_then_unfinished, chain_nomask_train, chain_formats, chain_train_refusals, chain_train_refusals2,
              chain_train_classes, chain_user_folder, chain_split, chain_noise_auto):
        submit(f)
    while True:
        with LOCK: pending = [f for f in FUTURES if not f.done()]
        if not pending: break
        pending[0].result()
    POOL.shutdown()
    table()
    bad = [c for c in sorted(CASES, key=lambda c: c.id) if not c.ok]
    for c in bad:
        print(f"\nFAIL {c.id} {c.name}\n  command: {c.cmd}\n  expected exit {c.expected}, got {c.actual}")
        for p in c.problems: print(f"  - {p}")
        err = c.stderr.strip().replace('\r', '\n')
        err = '\n'.join(l for l in err.split('\n') if l.strip())
        if err: print('  stderr (last 15 lines):\n' + '\n'.join('    | ' + l for l in err.split('\n')[-15:]))
    if '--verbose' in sys.argv[1:]:   # the last stderr line of every case
        print()
        for c in sorted(CASES, key=lambda c: c.id): print(f"{c.id}: {(lines(c.stderr) or [''])[-1][:400].replace(str(T), '$T')}")
    for c in sorted(CASES, key=lambda c: c.id):
        for n in c.notes: print(f"\nnote {c.id} {c.name}: {n}")
    print(f"\nwall time {time.monotonic() - t:.0f} s; the commands used {sum(c.cpu for c in CASES):.0f} CPU s on {os.cpu_count()} cores")
    print(f"{len(CASES) - len(bad)} passed, {len(bad)} failed")
    if bad: print(f"(the suite's files are kept in {T})")
    else: shutil.rmtree(T, ignore_errors=True)
    return 1 if bad else 0

if __name__ == '__main__':
    try: sys.exit(main())
    except KeyboardInterrupt:   # the commands run in sessions of their own: stop them, and start no more
        STOP.set()
        with LOCK:
            for p in RUNNING: _killpg(p, signal.SIGKILL)
        print(f"cli suite: interrupted; its files are in {T}", file=sys.stderr); os._exit(130)
