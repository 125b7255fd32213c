"""Build the course's static HTML site from the notebooks, with nbconvert (Quarto, and so nbdev's docs site, cannot be
installed here).

    python tools/build_site.py --out _site          # then open _site/index.html

Every notebook under nbs/ is rendered with its saved outputs (nothing is executed), in the course's order, computed from
what is in nbs/: the front page (nbs/index.ipynb, the README's source) followed by a map of the course; the numbered
notebooks; then each folder (tutorials, assignments, ...). Titles come from each notebook's first `# heading`, so a new
notebook appears without editing this tool. The assignments appear as their **student versions**, written by
`nbgrader generate_assignment` (medcl_nb.grading.release_assignments): the site never shows a solution. Cells flagged
`#| hide` are left out and the `#|` flag lines are removed, as nbdev's docs do. Relative links are rewritten: a link to
a notebook goes to its page, a link to another file of the repository (CONTRIBUTING.md, a picture) goes to a copy in
the site (Markdown rendered to HTML). `check_links` lists every relative link that does not resolve (tests/test_site.py).
"""
from __future__ import annotations
import argparse, hashlib, html, re, shutil, sys, tempfile
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urldefrag, unquote

ROOT = Path(__file__).resolve().parent.parent
FOLDER_TITLES = {'tutorials': 'Tutorials', 'assignments': 'Assignments'}   # and their order; other folders follow, by name
LINK = re.compile(r'''(?P<attr>\b(?:href|src))=(?P<q>["'])(?P<url>.*?)(?P=q)''')

@dataclass
class Page:
    source: Path                      # the notebook rendered (a student version for assignments)
    origin: Path                      # where it lives in the repository (links are relative to it)
    out: str                          # path of the page in the site, e.g. 'tutorials/label_efficiency.html'
    section: str
    title: str = ''
    subtitle: str = ''
    nb: object = field(default=None, repr=False)

def _is_visible(path: Path, nbs: Path) -> bool:
    return not any(part.startswith(('_', '.')) for part in path.relative_to(nbs).parts)

def title_of(nb) -> tuple:
    "(title, subtitle): the notebook's first `# heading` and the `> quote` after it."
    for cell in nb.cells:
        if cell.cell_type != 'markdown': continue
        m = re.search(r'^#\s+(.+)$', cell.source, re.M)
        if m:
            sub = re.search(r'^>\s*(.+)$', cell.source[m.end():], re.M)
            return m.group(1).strip(), sub.group(1).strip() if sub else ''
    return '', ''

def discover(nbs: Path, student_dir: Path | None = None) -> list:
    "The pages in the course's order: the front page, the top-level notebooks, then each folder; assignments as student versions."
    from medcl_nb.grading import is_assignment, release_assignments
    pages = [Page(nbs/'index.ipynb', nbs/'index.ipynb', 'index.html', 'Home')] if (nbs/'index.ipynb').exists() else []
    pages += [Page(p, p, p.with_suffix('.html').name, 'Notebooks') for p in sorted(nbs.glob('*.ipynb'))
              if p.name != 'index.ipynb' and _is_visible(p, nbs)]
    order = lambda d: (list(FOLDER_TITLES).index(d.name) if d.name in FOLDER_TITLES else len(FOLDER_TITLES), d.name)
    for folder in sorted((d for d in nbs.iterdir() if d.is_dir() and _is_visible(d, nbs)), key=order):
        notebooks = [p for p in sorted(folder.rglob('*.ipynb')) if _is_visible(p, nbs) and '.ipynb_checkpoints' not in p.parts]
        instructor = [p for p in notebooks if is_assignment(p)]
        released = {}
        if instructor:
            if student_dir is None: raise ValueError(f"{folder} holds assignments: pass a folder for their student versions")
            for p in release_assignments(folder, student_dir/folder.name, names=[q.stem for q in instructor if q.parent == folder]):
                released[p.stem] = p
        section = FOLDER_TITLES.get(folder.name, folder.name.replace('_', ' ').capitalize())
        for p in notebooks:
            source = released.get(p.stem, p) if p in instructor else p
            pages.append(Page(source, p, p.relative_to(nbs).with_suffix('.html').as_posix(), section))
    return pages

def _clean(nb):
    "Drop `#| hide` cells and the `#|` flag lines, as nbdev's docs do."
    keep = []
    for cell in nb.cells:
        if cell.cell_type == 'code':
            lines = cell.source.splitlines()
            if any(re.match(r'#\|\s*hide\b', l) for l in lines[:3]): continue
            cell.source = '\n'.join(l for l in lines if not l.startswith('#|')).strip('\n')
            if not cell.source and not cell.get('outputs'): continue
        keep.append(cell)
    nb.cells = keep
    return nb

def _exporter():
    from nbconvert import HTMLExporter
    # our own notebooks are trusted: skip bleach's sanitizer, which costs more than the rest of the rendering
    return HTMLExporter(template_name='lab', exclude_input_prompt=True, exclude_output_prompt=True,
                        filters={'clean_html': lambda s: s.decode() if isinstance(s, bytes) else str(s)})

def _rel(target: str, page: str) -> str:
    "The relative URL from site page `page` to site path `target`."
    depth = page.count('/')
    return '../' * depth + target

class Site:
    def __init__(self, out: Path, pages: list):
        self.out, self.pages = out, pages
        self.by_origin = {p.origin.resolve(): p for p in pages}
        self.files = {}                      # repository file -> its path in the site

    def _file(self, path: Path) -> str:
        "Put a repository file into the site (Markdown rendered to a page) and return its site path."
        path = path.resolve()
        if path not in self.files:
            rel = path.relative_to(ROOT).as_posix()
            target = f"files/{rel[:-3] + '.html' if rel.endswith('.md') else rel}"
            dest = self.out/target
            dest.parent.mkdir(parents=True, exist_ok=True)
            if path.suffix == '.md': dest.write_text(_markdown_page(path, target, self), encoding='utf-8')
            else: shutil.copyfile(path, dest)
            self.files[path] = target
        return self.files[path]

    def rewrite(self, text: str, origin: Path, page: str) -> str:
        "Point relative links at the site: notebooks to their pages, other repository files to copies."
        def fix(m):
            url = m.group('url')
            base, frag = urldefrag(url)
            if not base or re.match(r'^[a-zA-Z][a-zA-Z0-9+.-]*:|^//|^/', base): return m.group(0)
            candidates = [(origin.parent/unquote(base)).resolve(), (ROOT/unquote(base)).resolve()]
            for target in candidates:
                if target in self.by_origin: new = _rel(self.by_origin[target].out, page)
                elif target.is_file() and target.is_relative_to(ROOT) and target.suffix != '.ipynb': new = _rel(self._file(target), page)
                else: continue
                return f"{m.group('attr')}={m.group('q')}{html.escape(new + ('#' + frag if frag else ''))}{m.group('q')}"
            return m.group(0)                # unresolvable: left for check_links to report
        return LINK.sub(fix, text)

def _nav(site: Site, i: int) -> str:
    page = site.pages[i]
    link = lambda p, text: f'<a href="{html.escape(_rel(p.out, page.out))}">{html.escape(text)}</a>'
    parts = [link(site.pages[0], 'medcl_nb: the course')]
    if i > 0: parts.insert(0, link(site.pages[i - 1], '← ' + site.pages[i - 1].title))
    if i + 1 < len(site.pages): parts.append(link(site.pages[i + 1], site.pages[i + 1].title + ' →'))
    return ('<nav class="medcl-nav" style="font:14px sans-serif;padding:8px 16px;border-bottom:1px solid #ddd;'
            'display:flex;justify-content:space-between;gap:1em">' + ''.join(f'<span>{p}</span>' for p in parts) + '</nav>')

def _inline(text: str) -> str:
    "Escape a title for HTML, keeping its `code` spans."
    return re.sub(r'`([^`]+)`', r'<code>\1</code>', html.escape(text))

def course_map(site: Site) -> str:
    "The course in order, grouped by section, with each page's title and subtitle."
    out, section = ['<section class="medcl-course-map" style="padding:0 32px 32px;font-family:sans-serif"><h2>The course, in order</h2>'], None
    for p in site.pages[1:]:
        if p.section != section:
            out.append(('</ol>' if section else '') + f'<h3>{html.escape(p.section)}</h3><ol>')
            section = p.section
        note = ' (student version)' if p.source != p.origin else ''
        out.append(f'<li><a href="{html.escape(p.out)}">{_inline(p.title)}</a>{note}'
                   + (f'<br><small>{_inline(p.subtitle)}</small>' if p.subtitle else '') + '</li>')
    return '\n'.join(out + ['</ol></section>' if section else '</section>'])

def _shared_css(body: str, site: Site, page: str) -> str:
    "Move the template's <style> blocks of the <head> (the same on every page, ~270 kB) into one shared stylesheet."
    start = body.find('<body')
    head, rest = body[:start], body[start:]
    styles = re.findall(r'<style[^>]*>.*?</style>', head, re.S)
    if not styles: return body
    css = '\n'.join(re.sub(r'^<style[^>]*>|</style>$', '', s) for s in styles)
    name = f"_static/notebook-{hashlib.sha1(css.encode()).hexdigest()[:10]}.css"
    if not (site.out/name).exists():
        (site.out/name).parent.mkdir(parents=True, exist_ok=True)
        (site.out/name).write_text(css, encoding='utf-8')
    head = head.replace(styles[0], f'<link rel="stylesheet" href="{_rel(name, page)}">', 1)
    for s in styles[1:]: head = head.replace(s, '', 1)
    return head + rest

def _markdown_page(path: Path, target: str, site: Site) -> str:
    import mistune
    body = site.rewrite(mistune.html(path.read_text(encoding='utf-8')), path, target)
    home = _rel('index.html', target)
    return (f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{html.escape(path.name)}</title></head>'
            f'<body style="font-family:sans-serif;max-width:60em;margin:auto;padding:16px">'
            f'<nav><a href="{home}">medcl_nb: the course</a></nav>{body}</body></html>')

def build(out='_site', nbs=None) -> list:
    "Render every notebook of `nbs` (default: this repository's nbs/) into `out`; return the pages."
    import nbformat
    out, nbs = Path(out), Path(nbs) if nbs else ROOT/'nbs'
    if out.exists(): shutil.rmtree(out)
    out.mkdir(parents=True)
    with tempfile.TemporaryDirectory() as students:
        pages = discover(nbs, Path(students))
        for p in pages:
            nb = nbformat.read(str(p.source), as_version=4)
            p.title, p.subtitle = title_of(nb)
            p.title, p.nb = p.title or p.origin.stem, nb
        site, exporter = Site(out, pages), _exporter()
        for i, p in enumerate(pages):
            body, _ = exporter.from_notebook_node(_clean(p.nb))
            body = _shared_css(site.rewrite(body, p.origin, p.out), site, p.out)
            body = re.sub(r'(<body[^>]*>)', lambda m: m.group(1) + _nav(site, i), body, count=1)
            if i == 0: body = body.replace('</main>', course_map(site) + '</main>', 1)
            (out/p.out).parent.mkdir(parents=True, exist_ok=True)
            (out/p.out).write_text(body, encoding='utf-8')
            p.nb = None
    return pages

def check_links(out) -> list:
    "Every relative href/src of every page that does not resolve to a file of the site: [(page, url)]."
    out, broken = Path(out), []
    for page in sorted(out.rglob('*.html')):
        for m in LINK.finditer(page.read_text(encoding='utf-8')):
            base, _ = urldefrag(html.unescape(m.group('url')))
            if not base or re.match(r'^[a-zA-Z][a-zA-Z0-9+.-]*:|^//', base): continue
            if not (page.parent/unquote(base)).resolve().is_file(): broken.append((page.relative_to(out).as_posix(), m.group('url')))
    return broken

def main(argv=None):
    p = argparse.ArgumentParser('build_site', description=__doc__.split('\n\n')[0])
    p.add_argument('--out', default='_site', help='output folder (replaced): default _site')
    p.add_argument('--nbs', default=None, help='the notebooks folder: default nbs/ of this repository')
    args = p.parse_args(argv)
    pages = build(args.out, args.nbs)
    broken = check_links(args.out)
    print(f"{len(pages)} pages written to {args.out}/ (open {args.out}/index.html)")
    for page, url in broken: print(f"broken link in {page}: {url}")
    return 1 if broken else 0

if __name__ == '__main__':
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
