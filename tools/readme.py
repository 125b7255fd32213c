"""Render README.md from nbs/index.ipynb with nbconvert (nbdev_readme needs Quarto, which
cannot be installed offline). `python tools/readme.py` writes README.md; `--check` exits 1
when README.md is out of step with the notebook."""
import argparse, re, sys
from pathlib import Path
import nbformat
from nbconvert import MarkdownExporter

ROOT = Path(__file__).resolve().parent.parent
DIRECTIVE = re.compile(r'^\s*#\|\s*(.*)$')

def _directives(cell):
    "The nbdev `#|` flags at the top of a cell, e.g. ['hide'] or ['eval: false']."
    flags = []
    for line in cell.source.splitlines():
        m = DIRECTIVE.match(line)
        if not m: break
        flags.append(m.group(1).strip())
    return flags

def _strip_directives(src):
    lines = src.splitlines()
    while lines and DIRECTIVE.match(lines[0]): lines.pop(0)
    return '\n'.join(lines)

def render(nb_path=ROOT/'nbs'/'index.ipynb'):
    "The README text for the notebook at `nb_path`: hidden cells dropped, nbdev flags removed."
    nb = nbformat.read(nb_path, as_version=4)
    cells = []
    for cell in nb.cells:
        flags = _directives(cell)
        if any(f.startswith(('hide', 'default_exp', 'export')) for f in flags): continue
        if cell.cell_type == 'code': cell.source = _strip_directives(cell.source)
        cells.append(cell)
    nb.cells = cells
    nb.metadata['language_info'] = {'name': 'python'}   # nbdev_clean strips it; code blocks need it
    body, _ = MarkdownExporter().from_notebook_node(nb)
    header = '<!-- Generated from nbs/index.ipynb by tools/readme.py: edit the notebook, not this file. -->\n\n'
    return header + re.sub(r'\n{3,}', '\n\n', body).strip() + '\n'

def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument('--check', action='store_true', help='fail if README.md differs from the rendered notebook')
    args = p.parse_args()
    text, readme = render(), ROOT/'README.md'
    if args.check:
        if not readme.exists() or readme.read_text() != text:
            sys.exit('README.md is out of step with nbs/index.ipynb: run `python tools/readme.py` and commit.')
        print('README.md matches nbs/index.ipynb')
    else:
        readme.write_text(text)
        print(f'wrote {readme}')

if __name__ == '__main__': main()
