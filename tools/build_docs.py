#!/usr/bin/env python
"""Build the diffad documentation site into `_docs/` with Python packages only (no Quarto, no network).

Each notebook in the nbdev sidebar order is executed as `nbdev_test` executes it (execnb's `CaptureShell`,
`IN_TEST=1`, cells flagged with `tst_flags` skipped, `skip_exec` notebooks not run), then processed with
nbdev's own documentation processors (`nbdev.processors.FilterDefaults`: frontmatter, `show_doc` for every
exported symbol, hidden and exported cells removed, backtick links), and finally rendered to one static HTML
page per notebook: markdown (mistune), maths as MathML (latex2mathml, rendered at build time), highlighted
code (pygments), the API docs with a docments parameter table, the figures as PNG/SVG files, a sidebar in
notebook order and prev/next links.

    python tools/build_docs.py                          # the whole site (what `make docs` runs)
    python tools/build_docs.py --only nbs/00_core.ipynb # index + the named notebooks only
    python tools/build_docs.py --strict                 # warnings (unknown TeX, broken local links) fail the build

Executed notebooks are cached in `_proc/_docs_cache/`, keyed by the notebook, the package sources, the
settings and this script; `--no-cache` runs everything again.
"""
from __future__ import annotations
import argparse, base64, contextlib, hashlib, html, io, json, os, re, shutil, subprocess, sys, time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath

ROOT = Path(__file__).resolve().parents[1]
ASSETS = Path(__file__).resolve().with_name('docs_assets')
CACHE_VERSION = '1'

# ------------------------------------------------------------------------------------------------------------
# Worker: execute one notebook and run nbdev's doc processors on it (runs in its own process)
# ------------------------------------------------------------------------------------------------------------

class NotebookError(Exception): pass

def _first_line(src:str) -> str:
    lines = [l for l in src.splitlines() if l.strip() and not l.lstrip().startswith('#|')]
    return (lines[0].strip() if lines else '')[:80]

def _tb(exc:BaseException, max_msg:int=800) -> str:
    "The last traceback frames and the error, its message cut short (a failed test_eq can print whole tensors)."
    import traceback
    frames = ''.join(traceback.format_tb(exc.__traceback__)[-4:])
    msg = str(exc)
    if len(msg) > max_msg: msg = msg[:max_msg] + f' [... {len(msg) - max_msg} more characters]'
    return f"{frames}{type(exc).__name__}: {msg}"

def _cell_error(rel, i:int, src:str, exc:BaseException) -> str:
    "Which notebook and cell (1-based, all cells counted, as nbdev_test counts them) failed, and how."
    return f"{rel}: cell #{i+1} failed ({_first_line(src)!r})\n{_tb(exc)}"

def _proc_error(rel, src:Path, e:Exception) -> str:
    "nbdev's doc processors re-run exported cells and cells with imports in a fresh shell: say which cell failed there."
    from execnb.nbio import read_nb
    m = re.search(r'in cell \d+ :\n(.*)', str(e), re.S)
    if e.__cause__ is None or not m: return f"{rel}: nbdev's doc processors failed: {e}"
    first = _first_line(m.group(1))
    idx = next((j for j, c in enumerate(read_nb(src).cells) if c.cell_type == 'code' and _first_line(c.source) == first), None)
    where = f'cell #{idx + 1}' if idx is not None else 'a cell'
    return (f"{rel}: {where} failed ({first!r}) when nbdev's doc processing re-ran it to render show_doc\n{_tb(e.__cause__)}\n"
            "(nbdev_docs does the same: it runs every exported cell and every cell with an import in a fresh shell, "
            "so keep imports in their own cells, apart from test code)")

def _install_table_renderer():
    "Make `show_doc` add a docments parameter table (Type, Default, Details) under the signature."
    import inspect
    import nbdev.showdoc
    from fastcore.docments import docments

    def _cell(s, code=False):
        s = str(s).replace('\n', ' ').strip()
        if code and s and '`' not in s: s = f'`{s}`'
        return s.replace('|', r'\|')

    def _anno(a):
        if a is inspect.Parameter.empty: return ''
        if isinstance(a, str): return a
        if isinstance(a, type): return a.__qualname__
        return inspect.formatannotation(a).replace('typing.', '').replace('__main__.', '')

    def _default(d):
        if d is inspect.Parameter.empty: return ''
        return getattr(d, '__name__', None) or repr(d)

    class TableRenderer(nbdev.showdoc.BasicMarkdownRenderer):
        "nbdev's `show_doc` markdown, with the parameter comments (docments) as a table under the signature"
        def _table(self):
            sym = self.sym
            try: sig = inspect.signature(sym, eval_str=True)
            except Exception:
                try: sig = inspect.signature(sym)
                except Exception: return ''
            try: dm = docments(sym, args_kwargs=True)
            except Exception: return ''
            params = [p for n, p in sig.parameters.items() if n != 'self']
            if not any(dm.get(p.name) for p in params) and not dm.get('return'): return ''
            rows = []
            for p in params:
                star = '\\*' if p.kind == p.VAR_POSITIONAL else '\\*\\*' if p.kind == p.VAR_KEYWORD else ''
                rows.append([star + p.name.replace('_', r'\_'), _cell(_anno(p.annotation), True),
                             _cell(_default(p.default), True), _cell(dm.get(p.name) or '')])
            ret = sig.return_annotation
            if not inspect.isclass(sym) and (ret is not sig.empty or dm.get('return')):
                rows.append(['**Returns**', _cell(_anno(ret), True), '', _cell(dm.get('return') or '')])
            keep = [0] + [j for j in (1, 2, 3) if any(r[j] for r in rows)]
            hdr = ['', '**Type**', '**Default**', '**Details**']
            lines = ['| ' + ' | '.join(hdr[j] for j in keep) + ' |', '|' + '|'.join('---' for _ in keep) + '|']
            lines += ['| ' + ' | '.join(r[j] for j in keep) + ' |' for r in rows]
            return '\n'.join(lines)

        def _repr_markdown_(self):
            tbl = self._table()
            dm = getattr(self.dm, 'dm', None)
            if isinstance(dm, dict):
                star = {inspect.Parameter.VAR_POSITIONAL: '*', inspect.Parameter.VAR_KEYWORD: '**'}
                # `*args` / `**kwargs` in the signature (fastcore shows them as `args:VAR_POSITIONAL`)
                kind = lambda v: v.get('anno') if isinstance(v, dict) and isinstance(v.get('anno'), inspect._ParameterKind) else None
                self.dm.dm = {(star[kind(v)] + k if kind(v) in star else k):
                              ({**v, 'anno': inspect.Parameter.empty} if kind(v) in star else v) for k, v in dm.items()}
                if tbl:  # the table carries the comments: show the signature without them
                    for v in self.dm.dm.values(): v['docment'] = None
            md = super()._repr_markdown_()
            return md + ('\n\n' + tbl if tbl else '')

    nbdev.showdoc.BasicMarkdownRenderer = TableRenderer

def _link_local_lib(lib:str):
    "Let nbdev's backtick links find this project's symbols even when it is not pip-installed (no entry point)."
    import nbdev.doclinks as dl
    from importlib.metadata import EntryPoint, entry_points
    if not (ROOT / lib / '_modidx.py').exists(): return
    def eps(**kw):
        res = list(entry_points(**kw))
        if kw.get('group') == 'nbdev' and lib not in [e.name for e in res]:
            res.append(EntryPoint(name=lib, value=f'{lib}._modidx:d', group='nbdev'))
        return res
    dl.entry_points = eps

def run_worker(src:Path, dst:Path):
    "Execute `src` like `nbdev_test` does, apply nbdev's doc processors, write the processed notebook to `dst`."
    os.chdir(ROOT)
    os.environ['IN_TEST'] = '1'
    sys.path.insert(0, str(ROOT))
    from fastcore.basics import str2bool
    from fastcore.xtras import working_directory
    from execnb.nbio import read_nb, write_nb
    from execnb.shell import CaptureShell
    from nbdev.config import get_config
    from nbdev.process import NBProcessor, extract_directives, nb_lang
    from nbdev.frontmatter import FrontmatterProc
    from nbdev.processors import FilterDefaults
    _install_table_renderer()
    _link_local_lib(get_config().lib_path.name)
    rel = src.relative_to(ROOT) if src.is_relative_to(ROOT) else src
    flags = set(get_config().tst_flags.split())

    fm = getattr(NBProcessor(src, procs=FrontmatterProc, process=True).nb, 'frontmatter_', {}) or {}
    nb = read_nb(src)
    if not str2bool(fm.get('skip_exec', False)) and nb_lang(nb) == 'python':
        k = CaptureShell(src)
        with working_directory(src.parent):
            for i, cell in enumerate(nb.cells):
                if cell.cell_type != 'code' or not cell.source.strip(): continue
                if 'nbdev_export' + '(' in cell.source: continue
                d = extract_directives(cell, remove=False)
                if d.get('eval:', [''])[0].lower() == 'false' or flags & d.keys(): continue
                cell.idx_ = i
                k.cell(cell)
                if k.exc is not None: raise NotebookError(_cell_error(rel, i, cell.source, k.exc))
        del k
    try:
        with working_directory(src.parent): FilterDefaults()(nb)
    except Exception as e: raise NotebookError(_proc_error(rel, src, e)) from e
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_suffix('.tmp')
    write_nb(nb, tmp); tmp.replace(dst)

# ------------------------------------------------------------------------------------------------------------
# Markdown and maths
# ------------------------------------------------------------------------------------------------------------

_re_fence_open = re.compile(r'^( {0,3})(`{3,}|~{3,})(.*)$')

def split_code(md:str):
    "Split markdown into (is_code, text) pieces: fenced code blocks and inline code spans are code."
    out, buf, lines, i = [], [], md.splitlines(keepends=True), 0
    def flush():
        if buf: out.extend(_split_inline(''.join(buf))); buf.clear()
    while i < len(lines):
        m = _re_fence_open.match(lines[i].rstrip('\n'))
        if m and not (m.group(2)[0] == '`' and '`' in m.group(3)):
            flush()
            ch, n, block = m.group(2)[0], len(m.group(2)), [lines[i]]
            i += 1
            while i < len(lines):
                block.append(lines[i]); i += 1
                if re.match(rf'^ {{0,3}}{re.escape(ch)}{{{n},}}\s*$', block[-1].rstrip('\n')): break
            out.append((True, ''.join(block)))
        else: buf.append(lines[i]); i += 1
    flush()
    return out

def _split_inline(s:str):
    out, pos, start = [], 0, 0
    while True:
        m = re.compile(r'(?<!`)(`+)(?!`)').search(s, pos)
        if not m: break
        n = len(m.group(1))
        close = re.compile(rf'(?<!`)`{{{n}}}(?!`)').search(s, m.end())
        if not close: pos = m.end(); continue
        if m.start() > start: out.append((False, s[start:m.start()]))
        out.append((True, s[m.start():close.end()]))
        pos = start = close.end()
    if start < len(s): out.append((False, s[start:]))
    return out

_re_display = re.compile(r'\$\$(.+?)\$\$(?:[ \t]*\{#(eq-[\w-]+)\})?', re.S)
_re_inline = re.compile(r'(?<![\\$\w])\$(?![\s$])((?:\\.|[^$\\\n]|\n(?![ \t]*\n))+?)(?<![\s\\])\$(?!\d)')
PH = '\u27e6{}{}\u27e7'   # ⟦D3⟧ / ⟦I4⟧: placeholders the markdown renderer leaves alone
_re_ph = re.compile('\u27e6([DI])(\\d+)\u27e7')

class Page:
    "Per-page rendering state: maths, heading ids, table of contents, warnings."
    def __init__(self, name): self.name, self.maths, self.ids, self.toc, self.warnings, self.eqs = name, [], set(), [], [], {}
    def slug(self, text):
        t = html.unescape(re.sub(r'<[^>]+>', '', _re_ph.sub('', text))).lower()
        t = re.sub(r'[^\w\s.-]', '', t)
        t = re.sub(r'\s+', '-', t.strip())
        t = re.sub(r'^[^a-z]+', '', t) or 'section'
        base, n = t, 0
        while t in self.ids: n += 1; t = f'{base}-{n}'
        self.ids.add(t)
        return t

def protect(md:str, page:Page) -> str:
    "Replace `$$...$$` and `$...$` outside code with placeholders; handle Quarto link attributes and `:::` divs."
    res = []
    for is_code, s in split_code(md):
        if is_code: res.append(s); continue
        def disp(m):
            page.maths.append((m.group(1), True, m.group(2))); return PH.format('D', len(page.maths) - 1)
        def inl(m):
            page.maths.append((m.group(1), False, None)); return PH.format('I', len(page.maths) - 1)
        s = _re_display.sub(disp, s)
        s = _re_inline.sub(inl, s)
        # [text](url){target="_blank" ...} (nbdev's source links): Quarto link attributes
        def linkattr(m):
            text, url, attrs = m.groups()
            if 'target' not in attrs: return f'[{text}]({url})'
            return f'<a href="{html.escape(url, quote=True)}" target="_blank" rel="noopener" class="ext-link">{text}</a>'
        s = re.sub(r'\[([^\]\n]*)\]\(([^)\s]*)\)\{([^}\n]*)\}', linkattr, s)
        # Quarto fenced divs  ::: {.callout-note}  ...  :::
        s = re.sub(r'(?m)^:::+[ \t]*\{([^}]*)\}[ \t]*$',
                   lambda m: f'<div class="{html.escape(" ".join(c[1:] for c in m.group(1).split() if c.startswith(".")))}">\n', s)
        s = re.sub(r'(?m)^:::+[ \t]*([\w-]+)[ \t]*$', lambda m: f'<div class="{m.group(1)}">\n', s)
        s = re.sub(r'(?m)^:::+[ \t]*$', '\n</div>\n', s)
        # Quarto cross references to labelled equations
        s = re.sub(r'@(eq-[\w-]+)', lambda m: f'⟦REF:{m.group(1)}⟧', s)
        res.append(s)
    return ''.join(res)

# TeX that latex2mathml does not know, rewritten to equivalents it does
_TEX_FIXES = [(re.compile(r'\\[lr]?Vert(?![A-Za-z])'), r'\\|'), (re.compile(r'\\[lr]vert(?![A-Za-z])'), '|'),
              (re.compile(r'\\(arg|Pr)(?![A-Za-z])'), r'\\operatorname{\1}'),
              (re.compile(r'\\label\{[^}]*\}|\\nonumber(?![A-Za-z])|\\notag(?![A-Za-z])'), '')]

# mathvariant="script" etc. are not part of MathML Core (Chromium ignores them): use the Unicode maths letters instead
_MV = {'script': 'SCRIPT', 'double-struck': 'DOUBLE-STRUCK', 'bold': 'BOLD', 'bold-italic': 'BOLD ITALIC',
       'fraktur': 'FRAKTUR', 'sans-serif': 'SANS-SERIF', 'monospace': 'MONOSPACE', 'bold-script': 'BOLD SCRIPT',
       'bold-fraktur': 'BOLD FRAKTUR', 'bold-sans-serif': 'SANS-SERIF BOLD', 'sans-serif-italic': 'SANS-SERIF ITALIC',
       'sans-serif-bold-italic': 'SANS-SERIF BOLD ITALIC'}
_MV_OLD = {'SCRIPT': 'SCRIPT', 'DOUBLE-STRUCK': 'DOUBLE-STRUCK', 'FRAKTUR': 'BLACK-LETTER'}

def _math_char(ch:str, style:str) -> str:
    import unicodedata
    name = unicodedata.name(ch, '')
    if ch.isascii() and ch.isalpha(): base = ('CAPITAL ' if ch.isupper() else 'SMALL ') + ch.upper()
    elif ch.isascii() and ch.isdigit(): base = name
    elif name.startswith('GREEK '): base = name.replace('GREEK ', '').replace('LETTER ', '')
    else: return ch
    for n in (f'MATHEMATICAL {style} {base}', f'{_MV_OLD[style]} {base}' if style in _MV_OLD else None):
        if not n: continue
        try: return unicodedata.lookup(n)
        except KeyError: pass
    return ch

def _fix_variants(mml:str) -> str:
    def rep(m):
        style = _MV.get(m.group(2))
        if not style: return m.group(0)
        return f'<{m.group(1)}>{html.escape("".join(_math_char(c, style) for c in html.unescape(m.group(3))), quote=False)}</{m.group(1)}>'
    return re.sub(r'<(mi|mn|mtext)\b[^>]*?\bmathvariant="([\w-]+)"[^>]*>([^<]*)</\1>', rep, mml)

def tex2mathml(tex:str, display:bool, page:Page) -> str:
    from latex2mathml.converter import convert
    for rx, rep in _TEX_FIXES: tex = rx.sub(rep, tex)
    try: mml = convert(tex.strip(), display='block' if display else 'inline')
    except Exception as e:
        page.warnings.append(f'cannot convert TeX {tex.strip()!r}: {type(e).__name__}: {e}')
        return f'<code class="math-error">{html.escape(tex)}</code>'
    mml = _fix_variants(mml)
    bad = re.findall(r'<m[io][^>]*>(\\[A-Za-z]+)</m[io]>', mml)
    if bad: page.warnings.append(f'unknown TeX command(s) {", ".join(sorted(set(bad)))} in {tex.strip()!r}')
    return mml

def restore(h:str, page:Page) -> str:
    "Put MathML where the placeholders are."
    def display_html(i):
        tex, _, label = page.maths[i]
        tag = None
        m = re.search(r'\\tag\*?\{([^}]*)\}', tex)
        if m: tag, tex = m.group(1), tex[:m.start()] + tex[m.end():]
        if label and tag is None:
            page.eqs.setdefault(label, str(len(page.eqs) + 1)); tag = page.eqs[label]
        idattr = f' id="{label}"' if label else ''
        eqno = f'<span class="eqno">({html.escape(tag)})</span>' if tag is not None else ''
        return idattr, tex2mathml(tex, True, page) + eqno
    def blk(m):
        idattr, inner = display_html(int(m.group(1)))
        return f'<div class="math display"{idattr}>{inner}</div>'
    h = re.sub(r'<p>\s*\u27e6D(\d+)\u27e7\s*</p>', blk, h)
    def one(m):
        i = int(m.group(2))
        if m.group(1) == 'I': return f'<span class="math inline">{tex2mathml(page.maths[i][0], False, page)}</span>'
        idattr, inner = display_html(i)
        return f'<span class="math display"{idattr}>{inner}</span>'
    h = _re_ph.sub(one, h)
    def ref(m):
        lab = m.group(1)
        if lab in page.eqs: return f'<a href="#{lab}" class="quarto-xref">Equation {page.eqs[lab]}</a>'
        page.warnings.append(f'reference to unknown equation @{lab}'); return '@' + lab
    return re.sub('⟦REF:(eq-[\\w-]+)⟧', ref, h)

def highlight(code:str, lang:str|None='python') -> str:
    from pygments import highlight as _hl
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import get_lexer_by_name, TextLexer
    lang = (lang or '').strip().split()[0].strip('{}.') if (lang or '').strip() else 'text'
    try: lexer = get_lexer_by_name(lang)
    except Exception: lexer = TextLexer()
    body = _hl(code, lexer, HtmlFormatter(nowrap=True))
    return f'<div class="sourceCode highlight"><pre class="sourceCode {html.escape(lang)}"><code>{body}</code></pre></div>\n'

_MD = None
def markdown(md:str, page:Page, toc:bool=True) -> str:
    global _MD
    import mistune
    if _MD is None:
        class R(mistune.HTMLRenderer):
            page, toc = None, True
            def heading(self, text, level, **attrs):
                m = re.search(r'\s*\{([^}]*)\}\s*$', text)
                hid = None
                if m:
                    ids = [a[1:] for a in m.group(1).split() if a.startswith('#')]
                    text = text[:m.start()]
                    if ids: hid = ids[0]; self.page.ids.add(hid)
                hid = hid or self.page.slug(text)
                if self.toc: self.page.toc.append((level, hid, text))
                return f'<h{level} id="{hid}" class="anchored">{text}<a class="anchor" href="#{hid}" aria-hidden="true">#</a></h{level}>\n'
            def block_code(self, code, info=None): return highlight(code, info or 'text')
        _MD = mistune.create_markdown(renderer=R(escape=False),
                                      plugins=['table', 'strikethrough', 'footnotes', 'url', 'task_lists'])
    _MD.renderer.page, _MD.renderer.toc = page, toc
    h = _MD(protect(md, page))
    h = re.sub(r'<td>(.*?)</td>', lambda m: '<td>' + re.sub(r'(<code>.*?</code>)', lambda c: c.group(1).replace('\\|', '|'), m.group(1)) + '</td>', h, flags=re.S)
    return restore(h, page)

# ------------------------------------------------------------------------------------------------------------
# Cells and outputs
# ------------------------------------------------------------------------------------------------------------

_re_ansi = re.compile(r'\x1B(?:[@-Z\\-_]|\[[0-?]*[ -/]*[@-~])')

def _text(v): return ''.join(v) if isinstance(v, list) else (v or '')

def clean_stream(s:str) -> str:
    s = _re_ansi.sub('', s)
    return '\n'.join(l.rsplit('\r', 1)[-1] if '\r' in l.rstrip('\r') else l.rstrip('\r') for l in s.split('\n'))

def cell_options(src:str):
    "Split leading Quarto `#| key: value` options from the code."
    import yaml
    lines, opts, i = src.splitlines(), {}, 0
    while i < len(lines) and re.match(r'^\s*#\|', lines[i]):
        kv = re.sub(r'^\s*#\|\s?', '', lines[i])
        try: d = yaml.safe_load(kv)
        except Exception: d = None
        if isinstance(d, dict): opts.update(d)
        i += 1
    return opts, '\n'.join(lines[i:]).strip('\n')

class Site:
    def __init__(self, cfg, out:Path, nbs:Path):
        self.cfg, self.out, self.nbs = cfg, out, nbs
        self.site_url = (str(cfg.get('doc_host', '')).rstrip('/') + '/' + str(cfg.get('doc_baseurl', '')).strip('/')).rstrip('/')

def _fig_name(page_out:PurePosixPath, ci:int, oi:int, ext:str) -> PurePosixPath:
    return page_out.parent / f'{page_out.stem}_files' / 'figure-html' / f'cell-{ci}-output-{oi}.{ext}'

def render_output(o, opts, page:Page, site:Site, page_out:PurePosixPath, ci:int, oi:int) -> str:
    ot = o.get('output_type')
    if ot == 'stream':
        txt = clean_stream(_text(o.get('text')))
        if not txt.strip(): return ''
        return f'<div class="cell-output cell-output-{o.get("name", "stdout")}"><pre><code>{html.escape(txt.rstrip())}</code></pre></div>\n'
    if ot == 'error':
        tb = clean_stream('\n'.join(o.get('traceback', [])))
        return f'<div class="cell-output cell-output-error"><pre><code>{html.escape(tb)}</code></pre></div>\n'
    data, meta = o.get('data', {}), o.get('metadata', {}) or {}
    if opts.get('output') == 'asis' and 'text/markdown' in data:
        return f'<div class="cell-output-asis">{markdown(_text(data["text/markdown"]), page)}</div>\n'
    def img(mime, ext, raw:bytes):
        rel = _fig_name(page_out, ci, oi, ext)
        (site.out / rel).parent.mkdir(parents=True, exist_ok=True)
        (site.out / rel).write_bytes(raw)
        m = meta.get(mime, meta) if isinstance(meta.get(mime, meta), dict) else {}
        w = f' width="{int(m["width"])}"' if isinstance(m.get('width'), (int, float)) else ''
        cap = opts.get('fig-cap')
        tag = f'<img src="{html.escape(str(PurePosixPath(rel).relative_to(page_out.parent)))}"{w} class="figure-img" alt="{html.escape(str(cap or ""))}">'
        if cap: tag = f'<figure>{tag}<figcaption>{markdown(str(cap), page, toc=False)}</figcaption></figure>'
        return f'<div class="cell-output cell-output-display">{tag}</div>\n'
    if 'text/html' in data:
        return f'<div class="cell-output cell-output-display">{_text(data["text/html"])}</div>\n'
    if 'image/svg+xml' in data: return img('image/svg+xml', 'svg', _text(data['image/svg+xml']).encode())
    if 'image/png' in data: return img('image/png', 'png', base64.b64decode(_text(data['image/png'])))
    if 'image/jpeg' in data: return img('image/jpeg', 'jpg', base64.b64decode(_text(data['image/jpeg'])))
    if 'text/markdown' in data:
        return f'<div class="cell-output cell-output-display">{markdown(_text(data["text/markdown"]), page, toc=False)}</div>\n'
    if 'text/latex' in data:
        t = _text(data['text/latex']).strip().strip('$')
        return f'<div class="cell-output cell-output-display"><div class="math display">{tex2mathml(t, True, page)}</div></div>\n'
    if 'text/plain' in data:
        return f'<div class="cell-output cell-output-display"><pre><code>{html.escape(_text(data["text/plain"]).rstrip())}</code></pre></div>\n'
    return ''

def render_cell(cell, ci, page:Page, site:Site, nb_dir:Path, page_out:PurePosixPath) -> str:
    ct, src = cell.get('cell_type'), _text(cell.get('source'))
    if ct == 'markdown':
        for name, att in (cell.get('attachments') or {}).items():
            for mime, b64 in att.items():
                if not mime.startswith('image/'): continue
                rel = page_out.parent / f'{page_out.stem}_files' / 'attachments' / name
                (site.out / rel).parent.mkdir(parents=True, exist_ok=True)
                (site.out / rel).write_bytes(base64.b64decode(_text(b64)))
                src = src.replace(f'attachment:{name}', str(PurePosixPath(rel).relative_to(page_out.parent)))
        return f'<div class="cell-md">{markdown(src, page)}</div>\n'
    if ct == 'raw':
        fmt = (cell.get('metadata') or {}).get('raw_mimetype', '') or (cell.get('metadata') or {}).get('format', '')
        return src if 'html' in fmt else ''
    if ct != 'code': return ''
    opts, code = cell_options(src)
    if opts.get('include') is False: return ''
    parts = []
    if opts.get('echo', True) is not False and code.strip():
        block = highlight(code, (cell.get('metadata') or {}).get('language', 'python'))
        fold = opts.get('code-fold')
        if fold in (True, 'true', 'show'):
            summary = html.escape(str(opts.get('code-summary', 'Code')))
            block = f'<details class="code-fold"{" open" if fold == "show" else ""}><summary>{summary}</summary>{block}</details>'
        parts.append(block)
    if opts.get('output', True) is not False:
        for oi, o in enumerate(cell.get('outputs', []) or []):
            parts.append(render_output(o, opts, page, site, page_out, ci, oi + 1))
    parts = [p for p in parts if p]
    if not parts: return ''
    if opts.get('output') == 'asis' and opts.get('echo') is False: return ''.join(parts)
    return f'<div class="cell">{"".join(parts)}</div>\n'

# ------------------------------------------------------------------------------------------------------------
# Pages, navigation, links
# ------------------------------------------------------------------------------------------------------------

def out_name(rel:PurePosixPath) -> PurePosixPath:
    "The HTML name nbdev/Quarto give a notebook: `01_noise.ipynb` -> `noise.html`."
    from nbdev.doclinks import _nbpath2html
    return PurePosixPath(_nbpath2html(Path(rel)).as_posix())

def sidebar_tree(cfg, nbs:Path):
    "The sidebar nbdev_docs would generate (sidebar.yml), as nested lists; notebooks in notebook order."
    import yaml
    from nbdev.quarto import nbdev_sidebar
    yml = nbs / 'sidebar.yml'
    if str(cfg.get('custom_sidebar', 'False')).lower() in ('true', '1', 'yes') and yml.exists(): text = yml.read_text()
    else:
        f = io.StringIO()
        with contextlib.redirect_stdout(f): nbdev_sidebar.__wrapped__(path=str(nbs), printit=True, force=True)
        text = f.getvalue()
    d = yaml.safe_load(text) or {}
    return ((d.get('website') or {}).get('sidebar') or {}).get('contents') or []

def flatten(tree):
    for x in tree:
        if isinstance(x, str): yield x
        elif isinstance(x, dict):
            if x.get('href'): yield x['href']
            yield from flatten(x.get('contents', []))

def prune(tree, keep:set):
    res = []
    for x in tree:
        if isinstance(x, str):
            if x in keep: res.append(x)
        elif isinstance(x, dict):
            sub = prune(x.get('contents', []), keep)
            href = x.get('href') if x.get('href') in keep else None
            if sub or href: res.append({**x, 'contents': sub, **({'href': href} if href else {})})
    return res

def frontmatter(path:Path) -> dict:
    from nbdev.process import NBProcessor
    from nbdev.frontmatter import FrontmatterProc, _fm2dict
    if path.suffix == '.ipynb':
        return dict(getattr(NBProcessor(path, procs=FrontmatterProc, process=True).nb, 'frontmatter_', {}) or {})
    return _fm2dict(path.read_text(), nb=False) or {}

def rel_href(target:PurePosixPath, page_out:PurePosixPath) -> str:
    return os.path.relpath(str(target), str(page_out.parent) if str(page_out.parent) != '.' else '.').replace(os.sep, '/')

def rewrite_links(h:str, page_out:PurePosixPath, site:Site, src_dir:PurePosixPath) -> str:
    "Links into the published site become relative; links to notebooks become links to their pages."
    def fix(m):
        attr, url = m.group(1), html.unescape(m.group(2))
        frag = ''
        if site.site_url and (url.startswith(site.site_url + '/') or url == site.site_url):
            path = url[len(site.site_url):].lstrip('/')
            if '#' in path: path, frag = path.split('#', 1); frag = '#' + frag
            path = path or 'index.html'
            if path.endswith('/'): path += 'index.html'
            url = rel_href(PurePosixPath(path), page_out) + frag
        elif not re.match(r'^[a-zA-Z][\w+.-]*:|^#|^/', url):
            path, _, frag = url.partition('#')
            if re.search(r'\.(ipynb|qmd|md)$', path):
                tgt = PurePosixPath(os.path.normpath(str(src_dir / path)).replace(os.sep, '/'))
                url = rel_href(out_name(tgt), page_out) + ('#' + frag if frag else '')
        return f'{attr}="{html.escape(url, quote=True)}"'
    return re.sub(r'\b(href)="([^"]*)"', fix, h)

def copy_local_images(h:str, page_out:PurePosixPath, site:Site, nb_dir:Path, page:Page) -> str:
    "Copy images referenced by relative paths in markdown next to the page."
    for src in set(re.findall(r'<img[^>]*\bsrc="([^"]+)"', h)):
        if re.match(r'^[a-zA-Z][\w+.-]*:|^/', src) or f'{page_out.stem}_files/' in src: continue
        f = (nb_dir / html.unescape(src)).resolve()
        if f.is_file():
            dst = site.out / page_out.parent / html.unescape(src)
            dst.parent.mkdir(parents=True, exist_ok=True); shutil.copy2(f, dst)
        else: page.warnings.append(f'image {src} not found next to the notebook')
    return h

def render_nav(tree, cur:PurePosixPath, page_out:PurePosixPath, titles:dict) -> str:
    def items(xs):
        res = []
        for x in xs:
            if isinstance(x, str):
                o = out_name(PurePosixPath(x))
                cls = ' class="active"' if o == cur else ''
                res.append(f'<li><a href="{rel_href(o, page_out)}"{cls}>{html.escape(titles.get(x, o.stem))}</a></li>')
            else:
                name = html.escape(re.sub(r'^\d+_', '', str(x.get('section', ''))).replace('_', ' '))
                head = (f'<a href="{rel_href(out_name(PurePosixPath(x["href"])), page_out)}">{name}</a>' if x.get('href') else name)
                res.append(f'<li class="section"><span class="section-title">{head}</span><ul>{"".join(items(x.get("contents", [])))}</ul></li>')
        return res
    return f'<ul class="sidebar-list">{"".join(items(tree))}</ul>'

def page_html(site:Site, title:str, desc_html:str, body:str, nav:str, toc, prev, nxt, page_out:PurePosixPath, is_home:bool) -> str:
    cfg = site.cfg
    up = rel_href(PurePosixPath('index.html'), page_out).rsplit('index.html', 1)[0]
    sitename = html.escape(str(cfg.get('title', cfg.get('lib_name', 'docs'))))
    toc_items = ''.join(f'<li class="toc-h{lv}"><a href="#{hid}">{re.sub(r"<a class=.anchor.*?</a>", "", t)}</a></li>'
                        for lv, hid, t in toc if lv in (2, 3))
    toc_html = f'<nav class="toc" aria-label="On this page"><h2>On this page</h2><ul>{toc_items}</ul></nav>' if toc_items else '<nav class="toc"></nav>'
    def pn(p, cls, arrow):
        if not p: return '<span></span>'
        o, t = p
        lab = 'Previous' if cls == 'prev' else 'Next'
        lab = f'{arrow} {lab}' if cls == 'prev' else f'{lab} {arrow}'
        return f'<a class="page-nav-{cls}" href="{rel_href(o, page_out)}" rel="{cls}"><span class="page-nav-label">{lab}</span><span class="page-nav-title">{html.escape(t)}</span></a>'
    git = cfg.get('git_url', '')
    gh = f'<a class="navbar-link" href="{html.escape(git)}">GitHub</a>' if git else ''
    head_title = sitename if is_home else f'{html.escape(title)} – {sitename}'
    return f'''<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="diffad tools/build_docs.py (nbdev processors, offline)">
<title>{head_title}</title>
<link rel="stylesheet" href="{up}site.css">
<link rel="stylesheet" href="{up}styles.css">
</head>
<body>
<header class="navbar"><a class="navbar-brand" href="{up}index.html">{sitename}</a><span class="navbar-fill"></span>{gh}</header>
<div class="page-layout">
<nav class="sidebar" aria-label="Notebooks">{nav}</nav>
<main class="content" id="quarto-document-content">
<header class="page-header"><h1 class="title">{html.escape(title)}</h1>{desc_html}</header>
{body}
<nav class="page-navigation">{pn(prev, 'prev', '&larr;')}{pn(nxt, 'next', '&rarr;')}</nav>
</main>
{toc_html}
</div>
</body>
</html>
'''

# ------------------------------------------------------------------------------------------------------------
# The build
# ------------------------------------------------------------------------------------------------------------

def cache_key(src:Path, cfg) -> str:
    import importlib.metadata as md
    h = hashlib.sha256()
    h.update(CACHE_VERSION.encode()); h.update(Path(__file__).read_bytes()); h.update(src.read_bytes())
    h.update(str(src.relative_to(ROOT)).encode())
    h.update((ROOT / 'settings.ini').read_bytes())
    lib = ROOT / cfg.lib_path.name
    for f in sorted(lib.rglob('*.py')): h.update(str(f.relative_to(ROOT)).encode()); h.update(f.read_bytes())
    for p in ('torch', 'numpy', 'matplotlib', 'nbdev', 'fastcore', 'execnb', 'scipy', 'scikit-learn'):
        try: h.update(f'{p}={md.version(p)}'.encode())
        except Exception: pass
    h.update(sys.version.encode())
    return h.hexdigest()[:20]

def _failure(rel, rc, stderr:str, max_lines:int=40, max_width:int=240) -> str:
    "A short failure report: the worker's one-line summary (notebook, cell) first, then the end of the traceback."
    lines = stderr.rstrip().splitlines()
    head = next((l for l in lines if l.startswith(f'{rel}:')), f'{rel}: execution failed (exit code {rc})')
    tail = [l if len(l) <= max_width else l[:max_width] + ' [...]' for l in lines[-max_lines:] if l != head]
    return head + ('\n' + '\n'.join('    ' + l for l in tail) if tail else '')

def execute_all(jobs, n_workers:int, timeout:int, cache_dir:Path):
    "Run the workers (one process per notebook, `n_workers` at a time); returns {src: error or None}."
    timings_f = cache_dir / 'timings.json'
    try: timings = json.loads(timings_f.read_text())
    except Exception: timings = {}
    jobs = sorted(jobs, key=lambda j: -timings.get(str(j[0].relative_to(ROOT)), 0))
    env = dict(os.environ)
    per = str(max(1, (os.cpu_count() or 1) // max(1, n_workers)))
    for v in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'NUMBA_NUM_THREADS'): env.setdefault(v, per)
    def one(job):
        src, dst = job
        rel = src.relative_to(ROOT)
        t0 = time.time()
        try:
            p = subprocess.run([sys.executable, str(Path(__file__).resolve()), '--_worker', str(src), str(dst)],
                               cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
            err = None if p.returncode == 0 else _failure(rel, p.returncode, p.stderr)
        except subprocess.TimeoutExpired: err = f'{rel}: timed out after {timeout} s (raise --timeout, or mark long cells #| slow)'
        dt = time.time() - t0
        timings[str(rel)] = dt
        print(f'  {"ok  " if err is None else "FAIL"} {rel} ({dt:.1f} s)', flush=True)
        return src, err
    with ThreadPoolExecutor(max_workers=max(1, n_workers)) as ex: res = dict(ex.map(one, jobs))
    try: timings_f.write_text(json.dumps(timings, indent=1))
    except Exception: pass
    return res

def check_links(out:Path):
    "Every local href/src in the site points at an existing file; #fragments without a matching id are only noted."
    problems, notes, ids = [], [], {}
    def page_ids(f):
        if f not in ids: ids[f] = set(re.findall(r'\bid="([^"]+)"', f.read_text(errors='ignore'))) if f.suffix == '.html' else set()
        return ids[f]
    for f in sorted(out.rglob('*.html')):
        text = f.read_text(errors='ignore')
        for attr, url in re.findall(r'\b(href|src)="([^"]*)"', text):
            url = html.unescape(url)
            if re.match(r'^[a-zA-Z][\w+.-]*:', url) or url.startswith('//'): continue
            path, _, frag = url.partition('#')
            tgt = f if not path else (f.parent / path).resolve()
            if not tgt.exists(): problems.append(f'{f.relative_to(out)}: {attr}="{url}" -> missing file'); continue
            if frag and frag not in page_ids(tgt): notes.append(f'{f.relative_to(out)}: {attr}="{url}" -> no id "{frag}" on that page')
    return problems, notes

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--only', nargs='+', metavar='NB', help='build only these notebooks (and index); default: all')
    ap.add_argument('--out', default=None, help='output folder (default: doc_path from settings.ini, _docs)')
    ap.add_argument('--jobs', type=int, default=None, help='notebooks executed at once (default: one per CPU, at most 4)')
    ap.add_argument('--timeout', type=int, default=900, help='seconds allowed per notebook (default 900)')
    ap.add_argument('--no-cache', action='store_true', help='execute every notebook again')
    ap.add_argument('--strict', action='store_true', help='treat warnings (unknown TeX, broken local links) as errors')
    ap.add_argument('--_worker', nargs=2, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a._worker:
        try: run_worker(Path(a._worker[0]).resolve(), Path(a._worker[1]).resolve())
        except NotebookError as e: sys.stderr.write(f'{e}\n'); sys.exit(1)
        return

    t_start = time.time()
    for mod, pkg in (('latex2mathml', 'latex2mathml'), ('mistune', 'mistune>=3'), ('pygments', 'pygments')):
        try: __import__(mod)
        except ImportError: sys.exit(f'build_docs: needs the Python package {pkg} (pip install "{pkg}"; it belongs in dev_requirements)')
    import mistune
    if int(mistune.__version__.split('.')[0]) < 3: sys.exit(f'build_docs: needs mistune>=3, found {mistune.__version__}')
    only = [Path(p).resolve() for p in a.only] if a.only else None
    out_arg = Path(a.out).resolve() if a.out else None
    os.chdir(ROOT)
    sys.path.insert(0, str(ROOT))
    from nbdev.config import get_config
    cfg = get_config()
    nbs = Path(cfg.nbs_path)
    out = out_arg or Path(cfg.doc_path)
    site = Site(cfg, out, nbs)
    if out.exists():  # it is emptied before writing: make sure it is a docs folder
        ours = out.resolve() == Path(cfg.doc_path).resolve() or (out / 'site.css').exists() or not any(out.iterdir())
        if not ours or out.resolve() in (ROOT, *ROOT.parents):
            sys.exit(f'build_docs: refusing to empty {out}: not a docs folder (use an empty or new folder for --out)')

    tree = sidebar_tree(cfg, nbs)
    order = [x for x in dict.fromkeys(flatten(tree)) if (nbs / x).suffix in ('.ipynb', '.qmd', '.md') and (nbs / x).exists()]
    if only:
        want = set(only)
        missing = [p for p in want if not p.exists()]
        if missing: sys.exit(f'build_docs: no such notebook: {", ".join(map(str, missing))}')
        keep = {x for x in order if (nbs / x).resolve() in want or PurePosixPath(x).stem == 'index' and PurePosixPath(x).parent == PurePosixPath('.')}
        unknown = want - {(nbs / x).resolve() for x in order}
        if unknown: sys.exit(f'build_docs: not in the docs sidebar (outside {nbs}?): {", ".join(map(str, unknown))}')
        order, tree = [x for x in order if x in keep], prune(tree, keep)
    if not order: sys.exit('build_docs: no notebooks found')

    titles = {x: str(frontmatter(nbs / x).get('title') or PurePosixPath(x).stem) for x in order}
    cache_dir = ROOT / '_proc' / '_docs_cache'
    cache_dir.mkdir(parents=True, exist_ok=True)
    jobs, processed = [], {}
    for x in order:
        src = nbs / x
        if src.suffix != '.ipynb': continue
        dst = cache_dir / f'{x.replace("/", "__")}.{cache_key(src, cfg)}.json'
        processed[x] = dst
        if a.no_cache or not dst.exists(): jobs.append((src.resolve(), dst))
    n_workers = a.jobs or max(1, min(4, os.cpu_count() or 1, len(jobs) or 1))
    print(f'build_docs: {len(order)} pages, executing {len(jobs)} notebook(s) on {n_workers} worker(s)'
          f' ({len(processed) - len(jobs)} cached)', flush=True)
    t_exec = time.time()
    errors = execute_all(jobs, n_workers, a.timeout, cache_dir) if jobs else {}
    failed = {k: v for k, v in errors.items() if v}
    if failed:
        sys.stderr.write('\nbuild_docs: FAILED: these notebooks did not execute:\n')
        for src, err in failed.items(): sys.stderr.write(f'\n== {src.relative_to(ROOT)}\n{err}\n')
        sys.exit(1)
    t_exec = time.time() - t_exec
    for f in cache_dir.glob('*.json'):  # drop stale cache entries
        if f.name != 'timings.json' and f not in processed.values() and any(f.name.startswith(x.replace('/', '__') + '.') for x in order): f.unlink()

    # render
    if out.exists(): shutil.rmtree(out)
    out.mkdir(parents=True)
    shutil.copy2(ASSETS / 'site.css', out / 'site.css')
    from pygments.formatters import HtmlFormatter
    with open(out / 'site.css', 'a') as f: f.write('\n/* pygments */\n' + HtmlFormatter(style='default').get_style_defs('.highlight'))
    if (nbs / 'styles.css').exists(): shutil.copy2(nbs / 'styles.css', out / 'styles.css')
    else: (out / 'styles.css').write_text('')
    (out / '.nojekyll').write_text('')

    warnings = []
    outs = {x: out_name(PurePosixPath(x)) for x in order}
    for i, x in enumerate(order):
        src = nbs / x
        page_out = outs[x]
        page = Page(str(page_out))
        if src.suffix == '.ipynb':
            nb = json.loads(processed[x].read_text())
            cells = nb.get('cells', [])
            fm = frontmatter(src)
            if cells and cells[0].get('cell_type') == 'raw' and _text(cells[0].get('source')).lstrip().startswith('---'):
                from nbdev.frontmatter import _fm2dict
                fm = {**fm, **(_fm2dict(_text(cells[0]['source'])) or {})}; cells = cells[1:]
            body = ''.join(render_cell(c, ci + 1, page, site, src.parent, page_out) for ci, c in enumerate(cells))
        else:
            from nbdev.frontmatter import _fm2dict, _re_fm_md
            text = src.read_text(); fm = _fm2dict(text, nb=False) or {}
            body = markdown(_re_fm_md.sub('', text.strip(), count=1), page)
        title = str(fm.get('title') or titles[x])
        desc = fm.get('description')
        desc_html = f'<div class="description">{markdown(str(desc), page, toc=False)}</div>' if desc else ''
        body = rewrite_links(body, page_out, site, PurePosixPath(x).parent)
        body = copy_local_images(body, page_out, site, src.parent, page)
        desc_html = rewrite_links(desc_html, page_out, site, PurePosixPath(x).parent)
        prev = (outs[order[i - 1]], titles[order[i - 1]]) if i > 0 else None
        nxt = (outs[order[i + 1]], titles[order[i + 1]]) if i + 1 < len(order) else None
        nav = render_nav(tree, page_out, page_out, titles)
        toc = [(lv, hid, restore(t, page)) for lv, hid, t in page.toc]
        doc = page_html(site, title, desc_html, body, nav, toc, prev, nxt, page_out, PurePosixPath(x).stem == 'index')
        (out / page_out).parent.mkdir(parents=True, exist_ok=True)
        (out / page_out).write_text(doc)
        warnings += [f'{x}: {w}' for w in page.warnings]

    link_problems, link_notes = check_links(out)
    if not only: warnings += [f'broken link: {p}' for p in link_problems]
    elif link_problems: print(f'build_docs: note: {len(link_problems)} local link(s) point at pages outside --only (not checked)')
    for n in link_notes: print(f'build_docs: note: link to a missing anchor (the page exists): {n}')
    warnings = list(dict.fromkeys(warnings))
    for w in warnings: print(f'build_docs: warning: {w}', file=sys.stderr)
    print(f'build_docs: wrote {len(order)} pages to {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}/ '
          f'in {time.time() - t_start:.1f} s (execution {t_exec:.1f} s)', flush=True)
    if warnings and a.strict: sys.exit(f'build_docs: {len(warnings)} warning(s) with --strict')

if __name__ == '__main__': main()
