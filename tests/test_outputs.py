"""No saved output of any notebook shows an absolute local path (tools/check_outputs.py): a home or work folder, a
temporary folder, an installed package's location.

The notebooks in KNOWN_LOCAL_PATHS showed such paths when this test was written (issue 16, "Defects": the torch.jit
FutureWarning and the kernel's temporary files); they are reported as expected failures (xfail) with the full listing,
and pass once fixed. Every other notebook, including any new one, is checked hard.
To make the check hard everywhere: empty KNOWN_LOCAL_PATHS (one line), or run with MEDCL_STRICT_OUTPUTS=1."""
import importlib.util, json, os, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location('check_outputs', ROOT/'tools'/'check_outputs.py')
check_outputs = sys.modules['check_outputs'] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check_outputs)

KNOWN_LOCAL_PATHS = set()   # empty: every notebook's saved outputs are checked hard
STRICT = os.environ.get('MEDCL_STRICT_OUTPUTS') == '1'
NOTEBOOKS = check_outputs.notebooks(ROOT/'nbs')

def test_known_notebooks_exist():
    "A renamed or removed notebook must leave the list, or it would hide nothing and mislead."
    assert KNOWN_LOCAL_PATHS <= {p.relative_to(ROOT).as_posix() for p in NOTEBOOKS}

@pytest.mark.parametrize('notebook', NOTEBOOKS, ids=lambda p: p.relative_to(ROOT/'nbs').as_posix())
def test_no_local_paths_in_saved_outputs(notebook):
    findings = check_outputs.find_local_paths(notebook)
    name = notebook.relative_to(ROOT).as_posix()
    if findings and name in KNOWN_LOCAL_PATHS and not STRICT:
        pytest.xfail(f"known (issue 16), to be fixed by the notebook's owner:\n{check_outputs.report(findings)}")
    assert not findings, check_outputs.report(findings)

def _notebook(tmp_path, outputs):
    nb = {'cells': [{'cell_type': 'code', 'source': 'x', 'metadata': {}, 'outputs': outputs, 'execution_count': None}],
          'metadata': {}, 'nbformat': 4, 'nbformat_minor': 5}
    path = tmp_path/'x.ipynb'; path.write_text(json.dumps(nb))
    return path

def test_the_check_finds_what_it_should(tmp_path):
    bad = _notebook(tmp_path, [
        {'output_type': 'stream', 'name': 'stderr', 'text': ['/home/ana/.venv/lib/python3.11/site-packages/torch/jit/_script.py:1491: FutureWarning: ...\n']},
        {'output_type': 'stream', 'name': 'stderr', 'text': '/tmp/ipykernel_22643/3968876873.py:31: UserWarning: queue_size\n'},
        {'output_type': 'execute_result', 'data': {'text/plain': "PosixPath('/Users/ana/medcl_nb/data_samples')"}, 'metadata': {}, 'execution_count': 1},
        {'output_type': 'error', 'ename': 'FileNotFoundError', 'evalue': "No such file: '/work/main/x.csv'", 'traceback': ['\x1b[0;31m/root/x.py\x1b[0m']},
        {'output_type': 'display_data', 'data': {'text/html': '<a href="file:///C:/data/x.png">x</a> C:\\Users\\ana\\x'}, 'metadata': {}},
    ])
    findings = check_outputs.find_local_paths(bad, root=tmp_path)
    kinds = [(f.output, f.kind, f.path) for f in findings]
    assert kinds == [('stream stderr', 'an installed package', '/home/ana/.venv/lib/python3.11/site-packages/torch/jit/_script.py:1491:'),
                     ('stream stderr', 'a local folder', '/tmp/ipykernel_22643/3968876873.py:31:'),
                     ('execute_result text/plain', 'a local folder', '/Users/ana/medcl_nb/data_samples'),
                     ('error', 'a local folder', '/work/main/x.csv'),
                     ('error', 'a local folder', '/root/x.py'),
                     ('display_data text/html', 'a Windows user folder', 'C:\\Users\\ana\\x'),
                     ('display_data text/html', 'a file URL', 'file:///C:/data/x.png')], kinds
    assert 'x.ipynb: 7 local path(s)' in check_outputs.report(findings)
    assert check_outputs.main([str(bad)]) == 1

def test_the_check_leaves_alone_what_it_should(tmp_path):
    "URLs, relative paths, invented paths in a table, and images (whose base64 may contain '/tmp/') are not local paths."
    fine = _notebook(tmp_path, [
        {'output_type': 'stream', 'name': 'stdout', 'text': 'see https://github.com/work/tmp/x and experiment_out/report.json, ../../data_samples\n'},
        {'output_type': 'execute_result', 'data': {'text/plain': "path\n/data/p00000/0.png", 'image/png': 'iVBOR/tmp/work/AAA='},
         'metadata': {}, 'execution_count': 1},
    ])
    assert check_outputs.find_local_paths(fine, root=tmp_path) == []
    assert check_outputs.main([str(fine)]) == 0
