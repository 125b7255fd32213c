"""Find absolute local paths in the saved outputs of notebooks: a developer's home or work folder, a temporary folder,
an installed package's location. They leak a machine's layout into the docs and the site, and they mean nothing on
the reader's machine. Only text is read (streams, text/plain, text/html, text/markdown, errors), never images, whose
base64 could contain anything.

    python tools/check_outputs.py              # every notebook under nbs/ (skipping _ and . names, as nbdev does)
    python tools/check_outputs.py nbs/08_moco.ipynb ...

It prints each finding (notebook, cell, output, the path and its context) and exits 1 if there is any. Fix them at the
source: relative paths, `Path.name`, filtering or silencing the warning that prints a module's path.
"""
from __future__ import annotations
import argparse, json, re, sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_END = r'''[^\s'"<>()\[\]{},;]*'''
PATTERNS = {                # the first that matches a stretch of text names it
    'an installed package': re.compile(r'(?<![\w.:/~-])(?:/[\w.+-]+)*/(?:site-packages|dist-packages)/' + _END),
    'a local folder': re.compile(r'(?<![\w.:/~-])/(?:work|tmp|root|home|Users|mnt|scratch|private/var|var/folders|var/tmp)/' + _END),
    'a Python installation': re.compile(r'(?<![\w.:/~-])/(?:usr/(?:local/)?lib/python\d|opt/conda|opt/homebrew)' + _END),
    'a Windows user folder': re.compile(r'\b[A-Za-z]:\\{1,2}(?:Users|Documents and Settings)\\{1,2}' + _END),
    'a file URL': re.compile(r'file:///' + _END),
}
TEXT_TYPES = ('text/plain', 'text/html', 'text/markdown', 'text/latex', 'application/json')

@dataclass
class Finding:
    notebook: str
    cell: int               # index of the cell in the notebook
    output: str             # e.g. 'stream stderr', 'execute_result text/plain', 'error'
    kind: str               # which pattern matched
    path: str               # the matched path
    context: str            # the text around it

    def __str__(self): return f"{self.notebook} cell {self.cell} ({self.output}): {self.kind}: {self.path}\n    ...{self.context}..."

def _texts(output):
    "(label, text) of each text part of one output."
    kind = output.get('output_type')
    if kind == 'stream': yield f"stream {output.get('name', '')}".strip(), _join(output.get('text', ''))
    elif kind == 'error':
        yield 'error', '\n'.join([output.get('ename', ''), output.get('evalue', ''), *map(str, output.get('traceback', []))])
    else:
        for mime in TEXT_TYPES:
            if mime in output.get('data', {}):
                value = output['data'][mime]
                yield f"{kind} {mime}", json.dumps(value) if mime == 'application/json' else _join(value)

def _join(value): return ''.join(value) if isinstance(value, list) else str(value)

def _strip_ansi(text): return re.sub(r'\x1b\[[0-9;]*[A-Za-z]', '', text)

def find_local_paths(notebook, root=ROOT) -> list:
    "Every absolute local path in the saved text outputs of `notebook`."
    path = Path(notebook)
    name = path.resolve().relative_to(root).as_posix() if path.resolve().is_relative_to(root) else str(path)
    nb = json.loads(path.read_text(encoding='utf-8'))
    found = []
    for i, cell in enumerate(nb.get('cells', [])):
        for output in cell.get('outputs', []):
            for label, text in _texts(output):
                text, taken = _strip_ansi(text), []
                for kind, pattern in PATTERNS.items():
                    for m in pattern.finditer(text):
                        if any(m.start() < end and start < m.end() for start, end in taken): continue
                        taken.append(m.span())
                        context = text[max(0, m.start() - 60):m.end() + 40].replace('\n', ' ')
                        found.append(Finding(name, i, label, kind, m.group(0), context))
    return found

def notebooks(nbs=ROOT/'nbs') -> list:
    "The notebooks nbdev sees: under `nbs`, no part of the path starting with _ or ."
    nbs = Path(nbs)
    return sorted(p for p in nbs.rglob('*.ipynb') if not any(part.startswith(('_', '.')) for part in p.relative_to(nbs).parts))

def report(findings) -> str:
    "One block per notebook: how many findings, then each (cell, output, path, context)."
    if not findings: return 'no absolute local path in any saved output'
    out, by_nb = [], {}
    for f in findings: by_nb.setdefault(f.notebook, []).append(f)
    for nb, fs in by_nb.items():
        out.append(f"{nb}: {len(fs)} local path(s) in saved outputs (cells {sorted({f.cell for f in fs})})")
        out += [f"  cell {f.cell} ({f.output}): {f.kind}: {f.path}\n      ...{f.context}..." for f in fs]
    return '\n'.join(out)

def main(argv=None):
    p = argparse.ArgumentParser('check_outputs', description=__doc__.split('\n\n')[0])
    p.add_argument('notebooks', nargs='*', help='notebooks to check (default: every notebook under nbs/)')
    args = p.parse_args(argv)
    paths = [Path(n) for n in args.notebooks] or notebooks()
    findings = [f for p_ in paths for f in find_local_paths(p_)]
    print(report(findings))
    print(f"checked {len(paths)} notebook(s): {len({f.notebook for f in findings})} with local paths, {len(findings)} finding(s)")
    return 1 if findings else 0

if __name__ == '__main__':
    sys.exit(main())
