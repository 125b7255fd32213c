"""`medcl_retrieval` (medcl_nb.retrieval:medcl_retrieval_cli): help, argument checks, bad boxes (w/h <= 0 or outside the
image, naming the row) through the console script, and a tiny end-to-end run on data_samples that must write the report."""
import importlib, json, os, shutil, subprocess, sys
from pathlib import Path
import pandas as pd, pytest

ROOT = Path(__file__).resolve().parent.parent
ENTRY = 'medcl_retrieval=medcl_nb.retrieval:medcl_retrieval_cli'
HAVE_SAMPLES = (ROOT/'data_samples'/'cxr'/'boxes.csv').is_file()

def _cmd():
    beside = Path(sys.executable).parent/'medcl_retrieval'
    exe = str(beside) if beside.exists() else shutil.which('medcl_retrieval')
    if exe: return [exe]
    return [sys.executable, '-c', "import sys; sys.argv[0] = 'medcl_retrieval'; "
            "from medcl_nb.retrieval import medcl_retrieval_cli; sys.exit(medcl_retrieval_cli())"]

def run(*args, timeout=900):
    env = {**os.environ, 'MPLBACKEND': 'Agg', 'PYTHONPATH': str(ROOT), 'OMP_NUM_THREADS': '1'}
    return subprocess.run(_cmd() + list(args), cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)

def test_entry_point_resolves():
    module, func = ENTRY.split('=')[1].split(':')
    assert callable(getattr(importlib.import_module(module), func))

def test_help():
    r = run('--help', timeout=600)
    assert r.returncode == 0, r.stderr
    for opt in ('--data', '--out', '--boxes', '--crop-size', '--simclr-epochs', '--supcon-epochs', '--image-epochs'): assert opt in r.stdout

@pytest.mark.parametrize('args,message', [(['--crop-size', '4'], 'argument --crop-size: expected an integer >= 8, got 4'),
                                          (['--lr', '-1'], '--lr must be a positive number, got -1.0'),
                                          (['--simclr-epochs', 'x'], "expected an integer >= 1, got 'x'"),
                                          (['--data', 'no/such/folder'], '--data: folder not found: no/such/folder'),
                                          (['--seed', '2', '2'], '--seed: the seeds must be distinct, got [2, 2]')])
def test_bad_arguments_exit_2(args, message, capsys, monkeypatch):
    from medcl_nb.retrieval import medcl_retrieval_cli
    monkeypatch.chdir(ROOT)
    with pytest.raises(SystemExit) as e: medcl_retrieval_cli(args)
    assert e.value.code == 2 and message in capsys.readouterr().err

@pytest.mark.skipif(not HAVE_SAMPLES, reason='data_samples/cxr not generated (medcl_samples)')
@pytest.mark.parametrize('change,message', [(dict(w=0), 'w and h must be > 0, got w=0'), (dict(h=-2), 'got w=16, h=-2'),
                                            (dict(x=99), 'lies outside the 64x64 image')])
def test_bad_boxes_name_the_row(change, message, tmp_path, capsys, monkeypatch):
    "A bad box stops the run with exit status 2 and names the boxes row (after clipping to the images used)."
    boxes = pd.read_csv(ROOT/'data_samples'/'cxr'/'boxes.csv')
    for k, v in change.items(): boxes.loc[0, k] = v
    boxes.to_csv(tmp_path/'boxes.csv', index=False)
    from medcl_nb.retrieval import medcl_retrieval_cli
    monkeypatch.chdir(ROOT)
    with pytest.raises(SystemExit) as e:
        medcl_retrieval_cli(['--boxes', str(tmp_path/'boxes.csv'), '--out', str(tmp_path/'out'), '--no-progress'])
    err = capsys.readouterr().err
    assert e.value.code == 2 and message in err and f"boxes row 0 (dicom_id={boxes.dicom_id[0]}, name={boxes.name[0]})" in err

@pytest.mark.skipif(not HAVE_SAMPLES, reason='data_samples/cxr not generated (medcl_samples)')
def test_missing_boxes_exit_2(tmp_path, capsys):
    shutil.copytree(ROOT/'data_samples'/'cxr', tmp_path/'cxr', ignore=shutil.ignore_patterns('boxes.csv'))
    from medcl_nb.retrieval import medcl_retrieval_cli
    with pytest.raises(SystemExit) as e: medcl_retrieval_cli(['--data', str(tmp_path), '--out', str(tmp_path/'out'), '--no-progress'])
    assert e.value.code == 2 and 'no boxes.csv in' in capsys.readouterr().err

@pytest.mark.skipif(not HAVE_SAMPLES, reason='data_samples/cxr not generated (medcl_samples)')
def test_tiny_run_writes_report_and_plots(tmp_path):
    out = tmp_path/'ret'
    r = run('--out', str(out), '--max-patients', '40', '--simclr-epochs', '1', '--supcon-epochs', '1', '--image-epochs', '1',
            '--crop-size', '16', '--boot', '20', '--device', 'cpu', '--no-progress')
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert 'anatomy classification accuracy' in r.stdout and 'task A' in r.stdout and 'task B' in r.stdout
    for f in ('report.json', 'metrics.png', 'retrieval.png'): assert (out/f).stat().st_size > 0, f
    report = json.loads((out/'report.json').read_text(), parse_constant=lambda c: pytest.fail(f'report.json holds {c}'))
    assert {a['encoder'] for a in report['anatomy_accuracy']} == {'random', 'simclr', 'supcon'}
    tasks = {(r['task'], r['encoder']) for r in report['retrieval']}
    assert ('B', 'image') in tasks and ('A', 'image') not in tasks and ('A', 'supcon') in tasks
    for row in report['retrieval']:
        assert row['mAP_lo'] <= row['mAP'] <= row['mAP_hi'] and 0 <= row['chance_mAP'] <= 1
