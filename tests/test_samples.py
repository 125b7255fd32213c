"The committed data_samples/ is what `medcl_samples` writes: byte for byte, and bad input is refused cleanly."
import hashlib, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT/'data_samples'

def run(*args, cwd=None):
    code = 'import sys; from medcl_nb.data.synthetic import medcl_samples_cli; sys.argv[0] = "medcl_samples"; sys.exit(medcl_samples_cli())'
    return subprocess.run([sys.executable, '-c', code, *args], capture_output=True, text=True, cwd=cwd or ROOT)

def hashes(folder):
    folder = Path(folder)
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob('*')) if p.is_file()}

def test_regenerates_byte_identical(tmp_path):
    r = run('--out', str(tmp_path/'ds'))
    assert r.returncode == 0, r.stderr
    new, old = hashes(tmp_path/'ds'), hashes(SAMPLES)
    assert new.keys() == old.keys(), sorted(set(new) ^ set(old))[:10]
    differ = [k for k in new if new[k] != old[k]]
    assert not differ, f'{len(differ)} files differ, e.g. {differ[:5]}'
    # nothing left beside the target (the temporary folder was renamed)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['ds']

def test_rewrites_its_own_folder(tmp_path):
    assert run('--out', str(tmp_path/'ds'), '--n-patients', '3', '--n-echo', '1', '--n-timeseries', '2').returncode == 0
    r = run('--out', str(tmp_path/'ds'), '--n-patients', '4', '--n-echo', '0', '--n-timeseries', '0')
    assert r.returncode == 0, r.stderr
    assert not (tmp_path/'ds'/'echonet').exists() and sorted(p.name for p in tmp_path.iterdir()) == ['ds']

def test_help():
    r = run('--help')
    assert r.returncode == 0 and '--out' in r.stdout and '--seed' in r.stdout and '--show' in r.stdout

@pytest.mark.parametrize('args,word', [(['--n-patients', '0'], 'n_patients'), (['--n-patients', '-5'], 'n_patients'),
                                       (['--size', '100000'], 'size'), (['--n-echo', '-1'], 'n_echo'),
                                       (['--seed', '-1'], 'seed'), (['--n-patients', 'many'], 'invalid int')])
def test_bad_sizes_exit_2(tmp_path, args, word):
    r = run('--out', str(tmp_path/'ds'), *args)
    assert r.returncode == 2 and word in r.stderr, r.stderr
    assert list(tmp_path.iterdir()) == []

def test_refuses_foreign_folder(tmp_path):
    mine = tmp_path/'mine'; mine.mkdir(); (mine/'thesis.tex').write_text('precious')
    r = run('--out', str(mine), '--n-patients', '2')
    assert r.returncode == 2 and 'medcl_samples' in r.stderr and 'refusing' in r.stderr
    assert [p.name for p in mine.iterdir()] == ['thesis.tex'] and (mine/'thesis.tex').read_text() == 'precious'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['mine']

def test_unwritable_target(tmp_path):
    r = run('--out', '/proc/medcl-samples-cannot-write-here', '--n-patients', '2')
    assert r.returncode == 2 and 'medcl_samples: error' in r.stderr

def test_show(tmp_path):
    r = run('--out', str(tmp_path/'ds'), '--n-patients', '20', '--n-echo', '0', '--n-timeseries', '0', '--show', str(tmp_path/'grid.png'))
    assert r.returncode == 0, r.stderr
    assert (tmp_path/'grid.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
