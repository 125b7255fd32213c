"""Clinical time series (medcl_nb.timeseries, notebook 16): the PhysioNet/CinC 2012 fixture read end to end into
EBCL windows and one training step; the fixture is what its generator writes; the console script `medcl_timeseries`
(its help, argument checks with exit status 2, and a tiny end-to-end run on data_samples/ that writes the report)."""
import json, math, shutil, subprocess, sys, warnings
from configparser import ConfigParser
from pathlib import Path
import numpy as np, pandas as pd, pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT/'tests'/'fixtures'/'physionet2012'

def test_physionet_fixture_matches_its_generator():
    "The committed fixture is byte-identical to what tests/fixtures/make_fixtures.py writes (so it can be regenerated)."
    sys.path.insert(0, str(ROOT/'tests'/'fixtures'))
    try: import make_fixtures as mf
    finally: sys.path.pop(0)
    assert (FIXTURE/'set-a'/'132540.txt').read_text() == mf.physionet_record(132540, 76, 1, 175.3, 2, -1, 18, 24, 88,
        extra=((35 * 60 + 19, 'Weight', 81.6), (30 * 60, 'Lactate', 2.1)))
    assert (FIXTURE/'Outcomes-a.txt').read_text().splitlines()[0] == 'RecordID,SAPS-I,SOFA,Length_of_stay,Survival,In-hospital_death'

def test_physionet2012_reader_to_windows_to_one_step():
    "Fixture -> triplets/events -> windows (a short stay skipped, counted) -> normalizer -> DataLoaders -> one EBCL step."
    import torch
    from medcl_nb.timeseries import read_physionet2012, prepare_windows, ebcl_learner
    tri, ev = read_physionet2012(FIXTURE/'set-a')
    assert len(ev) == 4 and set(ev.index_time) == {24.0}
    assert ev.set_index('patient_id').loc['132540', 'mortality'] == 1
    assert math.isclose(ev.set_index('patient_id').loc['132539', 'discharge_time'], 120.0)
    # hh:mm past 24 h, and the descriptors are not measurements
    assert math.isclose(tri[(tri.patient_id == '132540') & (tri.variable == 'Weight')].time.iloc[0], 35 + 19 / 60)
    assert not tri.variable.isin(['RecordID', 'Age', 'Gender', 'Height', 'ICUType']).any()
    ev = ev.assign(split=['train', 'train', 'valid', 'valid'])           # 132541 (valid) has too few post observations
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        data = prepare_windows(tri, ev)
    assert data.windows.skipped.patient_id.tolist() == ['132541']
    assert any('1 of 4 events skipped' in str(w.message) for w in caught)
    assert data.n_variables == len(set(tri[tri.patient_id.isin(['132539', '132540'])].variable))   # the training vocabulary
    learn = ebcl_learner(data.dls(bs=2, device='cpu'))
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3)
    assert np.isfinite(learn.recorder.values[-1][0])

def _cmd():
    "The installed console script, or the same entry point through the interpreter (package not installed)."
    beside = Path(sys.executable).parent/'medcl_timeseries'
    exe = str(beside) if beside.exists() else shutil.which('medcl_timeseries')
    if exe: return [exe]
    return [sys.executable, '-c', "import sys; sys.argv[0] = 'medcl_timeseries'; "
            "from medcl_nb.timeseries import medcl_timeseries_cli; sys.exit(medcl_timeseries_cli())"]

def run(*args, timeout=600):
    return subprocess.run(_cmd() + list(args), cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env={**__import__('os').environ, 'MPLBACKEND': 'Agg', 'PYTHONPATH': str(ROOT), 'OMP_NUM_THREADS': '1'})

ENTRY = 'medcl_timeseries=medcl_nb.timeseries:medcl_timeseries_cli'

def test_entry_point_declared():
    "settings.ini declares the console script (the coordinator owns settings.ini: until the line is merged, an expected failure)."
    cfg = ConfigParser(); cfg.read(ROOT/'settings.ini')
    scripts = cfg['DEFAULT']['console_scripts'].split()
    if ENTRY not in scripts and not any(s.startswith('medcl_timeseries=') for s in scripts):
        pytest.xfail(f"settings.ini does not declare the console script yet; add to console_scripts: {ENTRY}")
    assert ENTRY in scripts

BAD = [
    (['--fractions', '0'], 'label fraction must be in (0, 1], got 0'),
    (['--epochs', '0'], 'argument --epochs: expected an integer >= 1, got 0'),
    (['--bs', '1'], 'argument --bs: expected an integer >= 2, got 1'),
    (['--data', 'no/such/folder'], '--data: folder not found: no/such/folder'),
    (['--arch', 'huge'], "argument --arch: invalid choice: 'huge'"),
    (['--temperature', '0'], '--temperature must be a positive number, got 0.0'),
    (['--format', 'csv'], "argument --format: invalid choice: 'csv'"),
]

@pytest.mark.parametrize('args,message', BAD)
def test_bad_arguments_exit_2(args, message, capsys, monkeypatch):
    from medcl_nb.timeseries import medcl_timeseries_cli
    monkeypatch.chdir(ROOT)
    with pytest.raises(SystemExit) as e: medcl_timeseries_cli(args)
    assert e.value.code == 2
    assert message in capsys.readouterr().err

def test_no_usable_task_exits_2(tmp_path, capsys, monkeypatch):
    "The PhysioNet fixture has too few stays for any task: a clear error and status 2, not a traceback."
    from medcl_nb.timeseries import medcl_timeseries_cli
    monkeypatch.chdir(ROOT)
    with pytest.raises(SystemExit) as e: medcl_timeseries_cli(['--data', str(FIXTURE), '--out', str(tmp_path), '--no-progress'])
    assert e.value.code == 2
    assert 'medcl_timeseries: error:' in capsys.readouterr().err

def test_console_help_and_tiny_run(tmp_path):
    "Through the console script (a fresh process): --help, then a tiny run on data_samples/ that writes the report and plots."
    r = run('--help', timeout=120)
    assert r.returncode == 0, r.stderr
    for opt in ('--data', '--out', '--seeds', '--max-obs', '--fractions', '--simulate'): assert opt in r.stdout
    r = run('--out', str(tmp_path), '--seeds', '0', '--epochs', '1', '--max-obs', '16', '--fractions', '1', '--draws', '1',
            '--boot', '20', '--supervised-epochs', '1', '--no-progress')
    assert r.returncode == 0, r.stderr[-3000:]
    rep = json.loads((tmp_path/'report.json').read_text())
    assert rep['tasks'] == ['readmission_30d', 'los_gt_3d'] and 'mortality' in rep['dropped_tasks']
    assert rep['task_views'] == {'readmission_30d': 'pre+post', 'los_gt_3d': 'pre'}
    assert {'ebcl', 'random', 'supervised'} == {m['encoder'] for m in rep['metrics']}
    for f in ('metrics.csv', 'summary.csv', 'label_efficiency.png', 'embedding.png'): assert (tmp_path/f).is_file(), f
    assert 'ebcl - random' in r.stdout and 'linear read-out' in r.stdout
