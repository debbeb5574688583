"""Sphinx configuration of the diffad docs: nbdev's processed notebooks (`_proc/`, see tools/docs.sh) through myst-nb.

The `source-read` hook turns what nbdev leaves for Quarto into what myst-nb reads: the frontmatter into a title,
Quarto cell options into myst-nb tags; it adds a docments table under each `show_doc` and the toctree to index.
"""
import contextlib, importlib, inspect, io, json, re, sys
from pathlib import Path
import yaml
from docutils.nodes import make_id
from fastcore.docments import docments
from nbdev.config import get_config
from nbdev.quarto import nbdev_sidebar

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'tools'))
from run_nbs import page_name
from check_docs import ids_of

cfg = get_config()
project, author, copyright = cfg.title, cfg.author, cfg.copyright
extensions = ['myst_nb']
myst_enable_extensions = ['dollarmath', 'amsmath', 'attrs_inline']  # attrs: show_doc's source link
nb_execution_mode = 'off'              # the notebooks were executed by tools/run_nbs.py
nb_render_markdown_format = 'myst'     # show_doc's markdown: tables and maths
suppress_warnings = ['myst.nested_header']  # show_doc's headings inside outputs become rubrics
html_theme = 'sphinx_book_theme'
html_title = cfg.title
html_theme_options = {'repository_url': cfg.git_url, 'use_repository_button': True, 'use_download_button': False}
html_static_path = [str(ROOT / 'docs/node_modules/mathjax/es5/tex-svg-full.js')]  # npm ci --prefix docs
mathjax_path = 'tex-svg-full.js'       # relative to _static: maths is typeset with no network
html_show_sourcelink = False

SECTIONS = {'studies': 'Results'}   # sidebar sections named for readers: nbs/studies/ holds the executed studies

def _sidebar(items):
    "nbdev's sidebar (the notebook order of sidebar.yml) as [(section or None, [docnames])]."
    top, secs = [], []
    for x in items:
        if isinstance(x, str): top.append(page_name(Path(x)).with_suffix('').as_posix())
        else: secs.append((SECTIONS.get(x['section'], x['section']), [d for _, ds in _sidebar(x['contents']) for d in ds]))
    return [(None, top), *secs]

with contextlib.redirect_stdout(io.StringIO()) as _f: nbdev_sidebar(printit=True, force=True)
TOC = _sidebar(yaml.safe_load(_f.getvalue())['website']['sidebar']['contents'])
_pages = {d for _, ds in TOC for d in ds}
exclude_patterns = [p.relative_to(ROOT / '_proc').as_posix() for p in (ROOT / '_proc').rglob('*.ipynb')
                    if p.relative_to(ROOT / '_proc').with_suffix('').as_posix() not in _pages]

def _toctree(caption, docs):
    cap = f':caption: {caption}\n' if caption else ''
    return f'```{{toctree}}\n:hidden:\n:maxdepth: 1\n{cap}\n' + '\n'.join(docs) + '\n```\n'

_opts = {'echo': 'remove-input', 'output': 'remove-output', 'include': 'remove-cell'}
_re_opt = re.compile(r'^#\|\s*([\w-]+)\s*:\s*(.*?)\s*$')

_re_sd = re.compile(rf'\[source\]\({re.escape(cfg.git_url)}/blob/[^/]+/(\S+?)\.py#L\d+\).*?^#+ (\S+)$', re.S | re.M)

def _fmt(x, anno=False):
    if x is inspect.Parameter.empty or isinstance(x, inspect._ParameterKind): return ''  # *args, **kwargs: no type
    x = x if anno and isinstance(x, str) else inspect.formatannotation(x) if anno else getattr(x, '__name__', repr(x))
    return f'`{x}`'

_star = {inspect.Parameter.VAR_POSITIONAL: '\\*', inspect.Parameter.VAR_KEYWORD: '\\*\\*'}

def _with_table(md):
    "show_doc's markdown with fastcore's docments of the symbol as a table (Type, Default, Details) under the signature."
    m = _re_sd.search(md)
    try:
        obj = importlib.import_module(m[1].replace('/', '.'))
        for a in m[2].split('.'): obj = getattr(obj, a)
        dm = docments(obj, full=True, returns=not inspect.isclass(obj), args_kwargs=True)
    except Exception: return md
    rows = ['| ' + ' | '.join(x.replace('|', '\\|') for x in ('**Returns**' if k == 'return' else _star.get(v['anno'], '') + k, _fmt(v['anno'], True),
            _fmt(v['default']), v['docment'] or '')) + ' |' for k, v in dm.items() if k != 'self']
    if not any(v['docment'] for v in dm.values()): return md
    md = re.sub(r'```python\n.*?```', lambda b: re.sub(r'(?m)^(.*?\S)\s*# .*$', r'\1', b[0]), md, count=1, flags=re.S)
    return md + '\n\n| | **Type** | **Default** | **Details** |\n|---|---|---|---|\n' + '\n'.join(rows) + '\n'

def _md(s): return {'cell_type': 'markdown', 'metadata': {}, 'source': s}

def _read(app, docname, source):
    nb = json.loads(source[0])
    cells = nb['cells']
    for i, c in enumerate(cells):
        src = ''.join(c['source'])
        if c['cell_type'] == 'raw' and src.startswith('---'):  # nbdev's frontmatter: title and description
            fm = yaml.safe_load(src.strip().strip('-'))
            cells[i] = _md(f"# {fm.get('title', docname)}\n\n" + (f"> {fm['description']}\n" if fm.get('description') else ''))
        elif c['cell_type'] == 'code':
            lines = src.split('\n')
            n = next((j for j, l in enumerate(lines) if not _re_opt.match(l)), len(lines))
            tags = c['metadata'].setdefault('tags', [])
            for k, v in (_re_opt.match(l).groups() for l in lines[:n]):
                if k in _opts and v.lower() == 'false': tags.append(_opts[k])
            c['source'] = '\n'.join(lines[n:])
            for o in c.get('outputs', []):  # show_doc's markdown starts with a rule, which docutils allows in sections only
                md = ''.join(o.get('data', {}).get('text/markdown', ''))
                if md.startswith('---'): o['data']['text/markdown'] = _with_table(md[3:])
    if docname == 'index':
        cells.append(_md('\n'.join(_toctree(cap, [d for d in ds if d != 'index']) for cap, ds in TOC)))
    for i, c in enumerate(cells): c.setdefault('id', f'cell-{i}')  # nbformat 4.5 wants ids; nbdev's new cells have none
    source[0] = json.dumps(nb)

def _anchor(ids:set, sym:str) -> str:
    "The id on the target page for nbdev's anchor `sym`: its own API block, else its class's (a method or property has none of its own), else none."
    return next((f'#{a}' for a in (make_id(sym), make_id(sym.split('.')[0])) if sym and a in ids), '')

def _local_links(app, exc):
    "nbdev links symbols to their pages on doc_host: make those links relative, so the site works from a folder."
    if exc or app.builder.format != 'html': return
    out, host = Path(app.outdir), re.compile(rf'href="{re.escape(cfg.doc_host + cfg.doc_baseurl)}/([^"#]*)#?([^"]*)"')
    for f in out.rglob('*.html'):
        up, s = '../' * (len(f.relative_to(out).parts) - 1), f.read_text()
        # nbdev's anchors (`seed_everything`) as docutils writes the ids of show_doc's headings (`seed-everything`)
        t = host.sub(lambda m: f'href="{up}{m[1]}' + _anchor(ids_of(out / m[1]) if (out / m[1]).is_file() else set(), m[2]) + '"', s)
        if t != s: f.write_text(t)

def setup(app):
    app.connect('source-read', _read)
    app.connect('build-finished', _local_links)
