"""Execute notebooks in place and save their outputs, the way `nbdev_test` runs them: cells flagged
`#| slow` or `#| cuda` (the `tst_flags` of settings.ini) are skipped unless named with `--flags`, and a
skipped cell keeps the outputs it had (so a slow run saved once is not wiped by a quick re-run).
`jupyter nbconvert --execute` cannot do this: it runs every cell, so it stops at the first `#| cuda` cell
on a machine without a GPU and spends minutes on the slow ones.

    python tools/run_notebook.py nbs/09b_experiment.ipynb [more.ipynb ...] [--flags slow] [--timeout 1200]

Run `nbdev_clean` afterwards, as after any execution."""
import argparse, re, sys
from pathlib import Path
import nbformat
from nbclient import NotebookClient

FLAG = re.compile(r'^\s*#\|\s*([\w-]+)\s*$')
SKIPPABLE = {'slow', 'cuda'}

def cell_flags(source):
    "The bare nbdev flags (`slow`, `cuda`, `hide`, ...) at the top of a cell's source."
    flags = set()
    for line in source.splitlines():
        if not line.strip(): continue
        m = FLAG.match(line)
        if not m:
            if re.match(r'^\s*#\|\s*eval:\s*false', line): flags.add('eval-false'); continue
            if line.lstrip().startswith('#|'): continue   # `#| export`-style directives with values
            break
        flags.add(m.group(1))
    return flags

def run(path, flags=(), timeout=1200):
    "Execute the notebook at `path` in its folder; cells flagged with a skippable flag not in `flags` keep their outputs."
    path = Path(path)
    if not path.is_file(): raise FileNotFoundError(f"notebook not found: {path}")
    nb = nbformat.read(path, as_version=4)
    skipped = {}
    for i, cell in enumerate(nb.cells):
        f = cell_flags(cell.source) if cell.cell_type == 'code' else set()
        if 'eval-false' in f or (f & SKIPPABLE) - set(flags):   # as nbdev_test: `#| eval: false` never runs
            skipped[i] = (cell.source, cell.get('outputs', []))
            cell.source = ''                                  # run nothing in its place
    NotebookClient(nb, timeout=timeout, kernel_name='python3', resources={'metadata': {'path': str(path.parent)}}).execute()
    for i, (source, outputs) in skipped.items():
        nb.cells[i].source, nb.cells[i].outputs = source, outputs
    nbformat.write(nb, path)
    return len(skipped)

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('notebooks', nargs='+')
    p.add_argument('--flags', nargs='*', default=[], choices=sorted(SKIPPABLE), help="flagged cells to run as well")
    p.add_argument('--timeout', type=int, default=1200, help="seconds per cell")
    a = p.parse_args()
    for nb in a.notebooks:
        n = run(nb, a.flags, a.timeout)
        print(f"{nb}: executed; {n} flagged cell(s) kept their saved outputs")
