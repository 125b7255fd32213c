"""The static site (`python tools/build_site.py --out _site`): built into a temporary folder, every notebook of nbs/ has its
page, the front page lists them in the course's order, every relative link of every page resolves, the assignments
appear as nbgrader's student versions (no solution), and nbdev's `#| hide` cells and flags are gone. A tiny notebook
folder checks the link rewriting and that `check_links` reports a broken link (so the main check can fail)."""
import html, importlib.util, re, sys
from pathlib import Path
import nbformat, pytest

pytest.importorskip('nbgrader')
ROOT = Path(__file__).resolve().parent.parent
NBS = ROOT/'nbs'
spec = importlib.util.spec_from_file_location('build_site', ROOT/'tools'/'build_site.py')
build_site = sys.modules['build_site'] = importlib.util.module_from_spec(spec)    # (its dataclass looks itself up there)
spec.loader.exec_module(build_site)

def page_text(path):
    "What a reader sees: the page without its tags (highlighted code is split into many <span>s)."
    return html.unescape(re.sub(r'<[^>]+>', '', Path(path).read_text()))

def visible_notebooks(nbs):
    return sorted(p for p in nbs.rglob('*.ipynb') if not any(part.startswith(('_', '.')) for part in p.relative_to(nbs).parts))

@pytest.fixture(scope='module')
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp('site')/'_site'
    pages = build_site.build(out)
    return out, pages

def test_every_notebook_has_a_page(site):
    out, pages = site
    expected = {('index.html' if p == NBS/'index.ipynb' else p.relative_to(NBS).with_suffix('.html').as_posix()) for p in visible_notebooks(NBS)}
    assert {p.out for p in pages} == expected
    for page in expected:
        text = (out/page).read_text()
        assert len(text) > 2000 and '<main>' in text and 'medcl-nav' in text, page
    assert all(p.title and not p.title.endswith('.ipynb') for p in pages)

def test_front_page_lists_the_course_in_order(site):
    out, pages = site
    index = (out/'index.html').read_text()
    course = index[index.index('medcl-course-map'):]
    positions = [course.index(f'href="{p.out}"') for p in pages[1:]]
    assert positions == sorted(positions), 'the map follows the order of the pages'
    numbered = [p.out for p in pages if p.section == 'Notebooks']
    assert numbered == sorted(numbered) and numbered[0].startswith('00_')
    sections = list(dict.fromkeys(p.section for p in pages))
    assert sections[:2] == ['Home', 'Notebooks'] and sections.index('Tutorials') < sections.index('Assignments')
    for p in pages[1:]: assert re.search(r'>\s*' + re.escape(build_site._inline(p.title)) + r'\s*</a>', course), p.title

def test_every_relative_link_resolves(site):
    out, _ = site
    assert build_site.check_links(out) == []
    css = list((out/'_static').glob('notebook-*.css'))
    assert len(css) == 1 and css[0].stat().st_size > 100_000        # one shared stylesheet, not one per page
    assert (out/'files'/'CONTRIBUTING.html').is_file()               # index.ipynb links CONTRIBUTING.md: rendered into the site

def test_assignments_are_student_versions(site):
    out, pages = site
    students = [p for p in pages if p.source != p.origin]
    assert len(students) >= 4 and all(p.out.startswith('assignments/') for p in students)
    for p in students:
        text = page_text(out/p.out)
        assert 'BEGIN SOLUTION' not in text and 'YOUR CODE HERE' in text and 'NotImplementedError' in text, p.out
        instructor = nbformat.read(str(p.origin), as_version=4)
        region = re.compile(r'### BEGIN SOLUTION\n(.*?)### END SOLUTION', re.S)
        given = '\n'.join(region.sub('', c.source) for c in instructor.cells)    # code the students get anyway
        for cell in instructor.cells:
            for solution in region.findall(cell.source):
                for line in map(str.strip, solution.splitlines()):
                    if len(line) > 20 and line not in given: assert line not in text, (p.out, line)

def test_hidden_cells_and_flags_are_gone(site):
    out, _ = site
    text = page_text(out/'04_losses.html')
    assert 'def align_loss' in text and '#| export' not in text and '#| hide' not in text
    assert 'test_fail(lambda: align_loss(torch.randn(4, 3), torch.randn(5, 3))' not in text    # a `#| hide` cell of 04

def test_links_are_rewritten_and_broken_ones_reported(tmp_path):
    "A tiny course: links between notebooks become links between pages; a link to nothing is reported."
    nbs = tmp_path/'nbs'; (nbs/'tutorials').mkdir(parents=True)
    def write(path, text):
        nb = nbformat.v4.new_notebook(); nb.cells = [nbformat.v4.new_markdown_cell(text)]
        nbformat.write(nb, path)
    write(nbs/'index.ipynb', '# Home\n> front\n\nSee [the first](01_first.ipynb), [a tutorial](tutorials/story.ipynb#Part-2) and [how to contribute](CONTRIBUTING.md).')
    write(nbs/'01_first.ipynb', '# First\n\nBack [home](index.ipynb); [missing](02_missing.ipynb).')
    write(nbs/'tutorials'/'story.ipynb', '# Story\n\n## Part 2\n[the first notebook](../01_first.ipynb)')
    write(nbs/'_scratch.ipynb', '# never shown')
    out = tmp_path/'site'
    pages = build_site.build(out, nbs)
    assert [p.out for p in pages] == ['index.html', '01_first.html', 'tutorials/story.html']
    index, story = (out/'index.html').read_text(), (out/'tutorials'/'story.html').read_text()
    assert 'href="01_first.html"' in index and 'href="tutorials/story.html#Part-2"' in index
    assert 'href="files/CONTRIBUTING.html"' in index            # resolved from the repository root, as README.md does
    assert 'href="../01_first.html"' in story and 'href="../index.html"' in story
    assert build_site.check_links(out) == [('01_first.html', '02_missing.ipynb')]
    assert build_site.main(['--out', str(tmp_path/'again'), '--nbs', str(nbs)]) == 1   # the command fails on a broken link
