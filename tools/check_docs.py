#!/usr/bin/env python
"""Check every page of the built docs site (`_docs/`) in headless Chromium; save screenshots.

Each page is loaded, with a small check script, by `chromium --headless --dump-dom`; the script waits for MathJax and
writes what it found into the DOM:
- every link (`a[href]`): local ones must point at existing files and at an existing `#id`;
- every `<img>` must have loaded (`complete` and `naturalWidth > 0`);
- every `.math` element must hold a laid-out MathJax SVG, with no MathJax error, and no raw `$ ... $`, `$$ ... $$`
  or TeX command (`\\frac`, `\\(`) may be left in the text outside code;
- each public function and class exported by diffad (`__all__`, pages from `_modidx.py`) has its `show_doc` block;
- the page has the sidebar and previous/next links.

    python tools/check_docs.py --screenshot index.html outputs/docs/home_page.png
"""
from __future__ import annotations
import argparse, html, json, os, re, shutil, subprocess, sys, tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlparse, unquote

ROOT = Path(__file__).resolve().parents[1]
FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run',
         '--no-default-browser-check', '--disable-extensions', '--hide-scrollbars', '--mute-audio']

CHECK_JS = r"""
<script>
window.addEventListener('load', () => {
  if (!(window.MathJax && MathJax.startup && MathJax.startup.promise)) return report();
  MathJax.startup.promise.then(() => setTimeout(report, 200), e => report(String(e)));
});
function report(err) {
  const main = document.querySelector('main') || document.body;
  const imgs = [...document.images].map(i => ({src: i.getAttribute('src'), ok: i.complete && i.naturalWidth > 0,
                                               w: i.naturalWidth, h: i.naturalHeight}));
  const links = [...document.querySelectorAll('a[href]')].map(a => ({raw: a.getAttribute('href'), url: a.href}));
  const maths = [...main.querySelectorAll('.math')];
  const typeset = maths.filter(m => { const s = m.querySelector('mjx-container svg');  // laid out where visible
                                      return s && (s.getBoundingClientRect().width > 0 || !m.getClientRects().length); });
  const errors = [...main.querySelectorAll('mjx-merror, [data-mjx-error]')].map(e => e.getAttribute('data-mjx-error') || e.textContent);
  const clone = main.cloneNode(true);
  clone.querySelectorAll('pre, code, .math, mjx-container, script, style').forEach(e => e.remove());
  const text = clone.textContent;
  const res = {title: document.title, imgs, links, nmath: maths.length, typeset: typeset.length, errors, err: err || null,
               blocks: maths.filter(m => m.tagName === 'DIV').length,
               rawDisplay: (text.match(/\$\$[\s\S]*?\$\$/g) || []).slice(0, 5),
               rawInline: (text.match(/(^|[^\\$\w])\$[^\s$][^$\n]*?[^\s\\]\$(?!\d)|(^|[^\\$\w])\$[^\s$]\$(?!\d)/g) || []).slice(0, 5),
               rawTex: (text.match(/\\(?:[A-Za-z]{2,}|[()\[\]])/g) || []).slice(0, 5),
               heads: [...main.querySelectorAll('h1, h2, h3, h4, h5, h6, .rubric')].map(h => h.textContent.replace(/[#\u00b6]/g, '').trim()),
               nav: document.querySelectorAll('nav.bd-links a').length,
               prevnext: document.querySelectorAll('a.left-prev, a.right-next').length};
  const pre = document.createElement('pre');
  pre.id = '__doccheck__'; pre.textContent = JSON.stringify(res);
  document.body.appendChild(pre);
}
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

def api_pages() -> dict:
    "{page: [names]}: the public functions and classes of each diffad module and the page nbdev documents them on."
    import importlib, inspect
    from diffad._modidx import d
    res = {}
    for mod, syms in d['syms'].items():
        m = importlib.import_module(mod)
        for n in getattr(m, '__all__', []):
            o = getattr(m, n, None)
            if (inspect.isfunction(o) or inspect.isclass(o)) and o.__module__ == mod and f'{mod}.{n}' in syms:
                res.setdefault(syms[f'{mod}.{n}'][0].split('#')[0], []).append(n)
    return res

def check_page(browser, site:Path, page:str, api:list):
    "Load `page` (relative to `site`) with the check script; returns (problems, summary, number of maths)."
    f = (site / page).resolve()
    test = f.with_name(f'.check-{f.name}')
    test.write_text(f.read_text().replace('</body>', CHECK_JS + '</body>', 1))
    try:
        for _ in range(2):  # a loaded machine now and then returns the DOM before the script ran: one retry
            p = run_browser(browser, ['--dump-dom', '--window-size=1280,2000', '--virtual-time-budget=20000',
                                      '--run-all-compositor-stages-before-draw', test.as_uri()])
            m = re.search(r'<pre id="__doccheck__"[^>]*>(.*?)</pre>', p.stdout, re.S)
            if m: break
    finally: test.unlink(missing_ok=True)
    if not m: return [f'{page}: the browser returned no check result (rc={p.returncode}): {p.stderr.strip()[-800:]}'], '', 0
    r = json.loads(html.unescape(m.group(1)))
    probs = []
    n_local = n_ext = 0
    for l in r['links']:
        u = urlparse(l['url'])
        if u.scheme in ('http', 'https', 'mailto'): n_ext += 1; continue
        if u.scheme != 'file': probs.append(f'{page}: link {l["raw"]!r} has scheme {u.scheme!r}'); continue
        tgt = Path(unquote(u.path))
        if tgt == test: tgt = f
        if not tgt.exists(): probs.append(f'{page}: link {l["raw"]!r} -> missing {tgt}'); continue
        n_local += 1
        if u.fragment and unquote(u.fragment) not in ids_of(tgt): probs.append(f'{page}: link {l["raw"]!r}: no id {u.fragment!r} in {tgt.name}')
    bad_imgs = [i['src'] for i in r['imgs'] if not i['ok']]
    if bad_imgs: probs.append(f'{page}: {len(bad_imgs)} image(s) did not load: {bad_imgs[:5]}')
    if r['err']: probs.append(f'{page}: MathJax failed: {r["err"]}')
    if r['typeset'] < r['nmath']: probs.append(f'{page}: {r["nmath"] - r["typeset"]} of {r["nmath"]} maths not typeset')
    if r['errors']: probs.append(f'{page}: MathJax errors: {r["errors"][:5]}')
    for k, what in (('rawDisplay', '$$ maths'), ('rawInline', '$ maths'), ('rawTex', 'TeX')):
        if r[k]: probs.append(f'{page}: raw {what} left in the text: {r[k]}')
    missing = [n for n in api if n not in r['heads']]
    if missing: probs.append(f'{page}: no API block for {missing}')
    if r['nav'] < 1: probs.append(f'{page}: no sidebar navigation links')
    if r['prevnext'] < 1: probs.append(f'{page}: no previous/next links')
    sizes = ', '.join(f"{i['w']}x{i['h']}" for i in r['imgs'][:4]) + (', ...' if len(r['imgs']) > 4 else '')
    summary = (f'{page}: {r["title"]!r}; {len(r["links"])} links ({n_local} local, {n_ext} external), sidebar {r["nav"]}, '
               f'prev/next {r["prevnext"]}; {len(r["imgs"])} image(s) {sizes}; {r["typeset"]}/{r["nmath"]} maths typeset '
               f'({r["blocks"]} display); {len(api)} API block(s)')
    return probs, summary, r['nmath']

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
    ap.add_argument('--screenshot', nargs=2, action='append', default=[], metavar=('PAGE', 'PNG'),
                    help='also save a 1280x2000 screenshot of PAGE (repeatable)')
    ap.add_argument('--browser', default=None, help='browser binary (default: chromium on PATH)')
    a = ap.parse_args(argv)
    browser = find_browser(a.browser)
    if not browser: sys.exit('check_docs: no chromium/chrome browser found')
    print(f'check_docs: {browser} {run_browser(browser, ["--version"], timeout=60).stdout.strip()}')
    site = Path(a.site)
    pages = sorted(p.relative_to(site).as_posix() for p in site.rglob('*.html')
                   if not p.name.startswith('.') and p.name not in ('genindex.html', 'search.html')
                   and not any(q.startswith('_') for q in p.relative_to(site).parts))
    api = api_pages()
    probs = [f'{p}: page not found in {site}' for p in api if p not in pages]
    with ThreadPoolExecutor(2) as ex:
        res = list(ex.map(lambda p: check_page(browser, site, p, api.get(p, [])), pages))
    for pr, summary, _ in res:
        if summary: print(summary)
        probs += pr
    if pages and not sum(n for *_, n in res): probs.append('no maths on any page')
    for page, png in a.screenshot: probs += screenshot(browser, site, page, Path(png).resolve())
    for p in dict.fromkeys(probs): print(f'FAIL: {p}')
    if probs: sys.exit(1)
    print(f'check_docs: {len(pages)} page(s) OK')

if __name__ == '__main__': main()
