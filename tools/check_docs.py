#!/usr/bin/env python
"""Check pages of the built docs site (`_docs/`) in headless Chromium; optionally take a screenshot.

For each page a test copy with a small check script is loaded with `chromium --headless --dump-dom`; the
script waits for the page to load and writes what it found into the DOM:
- every link (`a[href]`) as the browser resolved it: local ones must point at existing files, and `#ids` must exist;
- every `<img>`: it must have loaded (`complete` and `naturalWidth > 0`);
- the maths: `<math>` elements must be laid out with a non-zero size, no `<mi>` may hold an unknown `\\command`,
  and no raw `$$ ... $$` or `$ ... $` may be left in the text outside code.

    python tools/check_docs.py --page index.html --page noise.html --screenshot noise.html outputs/docs/noise_page.png
"""
from __future__ import annotations
import argparse, html, json, os, re, shutil, subprocess, sys, tempfile
from pathlib import Path
from urllib.parse import urlparse, unquote

ROOT = Path(__file__).resolve().parents[1]
FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run',
         '--no-default-browser-check', '--disable-extensions', '--hide-scrollbars', '--mute-audio']

CHECK_JS = r"""
<script>
window.addEventListener('load', () => setTimeout(() => {
  const imgs = [...document.images].map(i => ({src: i.getAttribute('src'), ok: i.complete && i.naturalWidth > 0,
                                               w: i.naturalWidth, h: i.naturalHeight}));
  const links = [...document.querySelectorAll('a[href]')].map(a => ({raw: a.getAttribute('href'), url: a.href}));
  const main = document.querySelector('main') || document.body;
  const clone = main.cloneNode(true);
  clone.querySelectorAll('pre, code, math, script, style, .math-error').forEach(e => e.remove());
  const text = clone.textContent;
  const maths = [...main.querySelectorAll('math')];
  const sized = maths.filter(m => { const r = m.getBoundingClientRect(); return r.width > 0 && r.height > 0; });
  const badmi = [...main.querySelectorAll('math mi, math mo')].map(e => e.textContent).filter(t => /^\\[A-Za-z]+$/.test(t));
  const rawDisplay = (text.match(/\$\$[\s\S]*?\$\$/g) || []).slice(0, 5);
  const rawInline = (text.match(/(^|[^\\$\w])\$[^\s$][^$\n]*?[^\s\\]\$(?!\d)|(^|[^\\$\w])\$[^\s$]\$(?!\d)/g) || []).slice(0, 5);
  const blocks = maths.filter(m => m.getAttribute('display') === 'block').length;
  const res = {title: document.title, imgs, links, nmath: maths.length, sized: sized.length, blocks, badmi,
               rawDisplay, rawInline, mathml: typeof MathMLElement !== 'undefined',
               nav: document.querySelectorAll('nav.sidebar a').length,
               prevnext: document.querySelectorAll('nav.page-navigation a').length};
  const pre = document.createElement('pre');
  pre.id = '__doccheck__'; pre.textContent = JSON.stringify(res);
  document.body.appendChild(pre);
}, 200));
</script>
"""

def find_browser(name=None):
    for c in ([name] if name else []) + ['chromium', 'chromium-browser', 'google-chrome', 'google-chrome-stable']:
        if c and shutil.which(c): return shutil.which(c)
    return None

def run_browser(browser, args, timeout=120):
    with tempfile.TemporaryDirectory(prefix='docs-chromium-') as prof:
        cmd = [browser, *FLAGS, f'--user-data-dir={prof}', *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)

def ids_of(f:Path, cache={}):
    if f not in cache: cache[f] = set(re.findall(r'\bid="([^"]+)"', f.read_text(errors='ignore'))) if f.suffix == '.html' else set()
    return cache[f]

def check_page(browser, site:Path, page:str, min_images:int, min_math:int):
    "Load `page` (relative to `site`) with the check script; returns (problems, summary)."
    f = (site / page).resolve()
    if not f.exists(): return [f'{page}: page not found in {site}'], ''
    test = f.with_name(f'.check-{f.name}')
    test.write_text(f.read_text().replace('</body>', CHECK_JS + '</body>', 1))
    try:
        p = run_browser(browser, ['--dump-dom', '--virtual-time-budget=15000', '--run-all-compositor-stages-before-draw',
                                  test.as_uri()])
    finally: test.unlink(missing_ok=True)
    m = re.search(r'<pre id="__doccheck__">(.*?)</pre>', p.stdout, re.S)
    if not m: return [f'{page}: the browser returned no check result (rc={p.returncode}): {p.stderr.strip()[-800:]}'], ''
    r = json.loads(html.unescape(m.group(1)))
    probs, notes = [], []
    n_local = n_anchor = n_ext = 0
    for l in r['links']:
        u = urlparse(l['url'])
        if u.scheme in ('http', 'https', 'mailto'): n_ext += 1; continue
        if u.scheme != 'file': probs.append(f'{page}: link {l["raw"]!r} has scheme {u.scheme!r}'); continue
        tgt = Path(unquote(u.path))
        if tgt == test: tgt = f
        if not tgt.exists(): probs.append(f'{page}: link {l["raw"]!r} -> missing {tgt}'); continue
        n_local += 1
        if u.fragment:
            n_anchor += 1
            if unquote(u.fragment) not in ids_of(tgt): notes.append(f'{page}: link {l["raw"]!r} -> no id {u.fragment!r} in {tgt.name} (the page exists)')
    bad_imgs = [i['src'] for i in r['imgs'] if not i['ok']]
    if bad_imgs: probs.append(f'{page}: {len(bad_imgs)} image(s) did not load: {bad_imgs[:5]}')
    if len(r['imgs']) < min_images: probs.append(f'{page}: {len(r["imgs"])} image(s), expected at least {min_images}')
    if not r['mathml']: probs.append(f'{page}: this browser has no MathML support')
    if r['nmath'] < min_math: probs.append(f'{page}: {r["nmath"]} <math> element(s), expected at least {min_math}')
    if r['sized'] < r['nmath']: probs.append(f'{page}: {r["nmath"] - r["sized"]} <math> element(s) not laid out (zero size)')
    if r['badmi']: probs.append(f'{page}: unknown TeX commands left in the maths: {sorted(set(r["badmi"]))}')
    if r['rawDisplay']: probs.append(f'{page}: raw $$ maths left in the text: {r["rawDisplay"]}')
    if r['rawInline']: probs.append(f'{page}: raw $ maths left in the text: {r["rawInline"]}')
    if r['nav'] < 1: probs.append(f'{page}: no sidebar navigation links')
    sizes = ', '.join(f"{i['w']}x{i['h']}" for i in r['imgs'][:6]) or '-'
    summary = (f'{page}: title {r["title"]!r}; {len(r["links"])} links ({n_local} local incl. {n_anchor} #anchors, '
               f'{n_ext} external), sidebar {r["nav"]} + prev/next {r["prevnext"]}; {len(r["imgs"])} image(s) loaded '
               f'{sizes}; {r["nmath"]} <math> ({r["blocks"]} display) all laid out: '
               f'{r["sized"] == r["nmath"]}; raw $: {len(r["rawDisplay"]) + len(r["rawInline"])}')
    for n in notes: summary += f'\n  note: {n}'
    return probs, summary

def screenshot(browser, site:Path, page:str, out:Path, size='1280,2000'):
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix('.tmp.png')
    p = run_browser(browser, [f'--screenshot={tmp}', f'--window-size={size}', '--virtual-time-budget=10000',
                              (site / page).resolve().as_uri()])
    if not tmp.exists() or tmp.stat().st_size < 1000:
        return [f'screenshot of {page} failed (rc={p.returncode}): {p.stderr.strip()[-800:]}']
    tmp.replace(out)
    print(f'screenshot: {page} -> {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out} ({out.stat().st_size // 1024} KiB, {size.replace(",", "x")})')
    return []

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--site', default=str(ROOT / '_docs'), help='the built site (default _docs)')
    ap.add_argument('--page', action='append', default=[], help='page to check, relative to the site (repeatable)')
    ap.add_argument('--min-images', action='append', default=[], metavar='PAGE=N', help='require at least N images on PAGE')
    ap.add_argument('--min-math', type=int, default=1, help='<math> elements each page must have (default 1)')
    ap.add_argument('--screenshot', nargs=2, metavar=('PAGE', 'PNG'), help='also save a 1280x2000 screenshot of PAGE')
    ap.add_argument('--browser', default=None, help='browser binary (default: chromium on PATH)')
    a = ap.parse_args(argv)
    browser = find_browser(a.browser)
    if not browser: sys.exit('check_docs: no chromium/chrome browser found')
    v = run_browser(browser, ['--version'], timeout=60).stdout.strip()
    print(f'check_docs: {browser} {v}')
    site = Path(a.site)
    mins = dict((k, int(n)) for k, n in (x.split('=', 1) for x in a.min_images))
    probs = []
    for page in a.page:
        pr, summary = check_page(browser, site, page, mins.get(page, 0), a.min_math)
        if summary: print(summary)
        probs += pr
    if a.screenshot: probs += screenshot(browser, site, a.screenshot[0], Path(a.screenshot[1]).resolve())
    probs = list(dict.fromkeys(probs))
    for p in probs: print(f'FAIL: {p}')
    if probs: sys.exit(1)
    print(f'check_docs: {len(a.page)} page(s) OK')

if __name__ == '__main__': main()
