#!/usr/bin/env python
"""Measure the exported cells of the notebooks: definitions per cell and cells over a line limit.

A definition is a top-level `def`, `class` or assignment to a public or private name (decorators belong to their
definition). Prints one row per notebook and the totals; `--list` names every cell over the limit.
Usage: python tools/cell_stats.py [--limit 40] [--list] [nbs/*.ipynb ...]
"""
import argparse, ast, json, re, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

def exported_cells(nb:Path) -> list:
    "The sources of a notebook's `#| export` / `#| exports` cells, directives removed."
    cells = json.loads(nb.read_text())['cells']
    out = []
    for c in cells:
        if c['cell_type'] != 'code': continue
        src = ''.join(c['source'])
        if not re.search(r'^#\|\s*exports?\b', src, re.M): continue
        out.append('\n'.join(l for l in src.splitlines() if not l.startswith('#|')))
    return out

def n_definitions(src:str) -> int:
    "Top-level definitions in a cell: functions, classes and assigned names (imports are not definitions)."
    tree = ast.parse(src)
    n = 0
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)): n += 1
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            n += sum(len(t.elts) if isinstance(t, ast.Tuple) else 1 for t in targets)
    return n

def n_lines(src:str) -> int: return sum(1 for l in src.splitlines() if l.strip())

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('nbs', nargs='*', help='notebooks (default: nbs/[0-9]*.ipynb)')
    ap.add_argument('--limit', type=int, default=40, help='a cell over this many non-blank lines is counted (default 40)')
    ap.add_argument('--list', action='store_true', help='name every cell over the limit')
    a = ap.parse_args()
    nbs = [Path(p) for p in a.nbs] or sorted((ROOT / 'nbs').glob('[0-9]*.ipynb'))
    tot_cells = tot_defs = tot_long = 0
    print(f"{'notebook':<24} {'cells':>5} {'defs':>5} {'defs/cell':>9} {'>' + str(a.limit) + ' lines':>10} {'largest':>7}")
    for nb in nbs:
        cells = [c for c in exported_cells(nb) if c.strip() and not re.fullmatch(r'\s*(import .*|from .* import .*|\s)*', c)]
        defs = [n_definitions(c) for c in cells]; lines = [n_lines(c) for c in cells]
        long = [(i, n) for i, n in enumerate(lines) if n > a.limit]
        tot_cells += len(cells); tot_defs += sum(defs); tot_long += len(long)
        print(f"{nb.name:<24} {len(cells):>5} {sum(defs):>5} {sum(defs) / max(len(cells), 1):>9.2f} {len(long):>10} {max(lines, default=0):>7}")
        if a.list:
            for i, n in long: print(f"    cell {i}: {n} lines: {cells[i].strip().splitlines()[0][:80]}")
    print(f"{'total':<24} {tot_cells:>5} {tot_defs:>5} {tot_defs / max(tot_cells, 1):>9.2f} {tot_long:>10}")
    return 0

if __name__ == '__main__': sys.exit(main())
