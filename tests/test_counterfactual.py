"""The counterfactual experiment's console script, `medcl_counterfactual` (medcl_nb.counterfactual:medcl_counterfactual_cli):
its help, its argument checks (exit status 2 with a message naming the argument), and a tiny end-to-end run that must write
report.json (rows with method, counterfactuals, fraction, seed, scanner or sex, auc and CIs) and the plots."""
import json, os, shutil, subprocess, sys
from configparser import ConfigParser
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parent.parent

def _cmd():
    "The installed console script, or the same entry point through the interpreter (not declared yet, or not installed)."
    beside = Path(sys.executable).parent/'medcl_counterfactual'
    exe = str(beside) if beside.exists() else shutil.which('medcl_counterfactual')
    if exe: return [exe]
    return [sys.executable, '-c', "import sys; sys.argv[0] = 'medcl_counterfactual'; "
            "from medcl_nb.counterfactual import medcl_counterfactual_cli; sys.exit(medcl_counterfactual_cli())"]

def run(*args, timeout=900):
    env = {**os.environ, 'MPLBACKEND': 'Agg', 'PYTHONPATH': str(ROOT), 'OMP_NUM_THREADS': '1'}
    return subprocess.run(_cmd() + list(args), cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)

def test_entry_point_declared():
    "settings.ini declares the console script (the coordinator adds the line); the function exists either way."
    from medcl_nb.counterfactual import medcl_counterfactual_cli
    assert callable(medcl_counterfactual_cli)
    cfg = ConfigParser(); cfg.read(ROOT/'settings.ini')
    if 'medcl_counterfactual=medcl_nb.counterfactual:medcl_counterfactual_cli' not in cfg['DEFAULT']['console_scripts'].split():
        pytest.skip('medcl_counterfactual is not declared in settings.ini console_scripts yet')

def test_help():
    r = run('--help', timeout=300)
    assert r.returncode == 0, r.stderr
    for opt in ('--out', '--full', '--prevalence', '--rare', '--seeds', '--methods', '--counterfactuals', '--fractions', '--device'):
        assert opt in r.stdout, opt

BAD = [
    (['--prevalence', '0'], 'a prevalence must be in (0, 1), got 0'),
    (['--prevalence', '1'], 'a prevalence must be in (0, 1), got 1'),
    (['--prevalence', 'rare'], "a prevalence must be a number in (0, 1), got 'rare'"),
    (['--rare', 'scanner_Z'], "argument --rare: invalid choice: 'scanner_Z'"),
    (['--methods', 'moco'], "argument --methods: invalid choice: 'moco'"),
    (['--methods', 'cf-simclr'], '--methods must include simclr'),
    (['--counterfactuals', 'approximate'], "argument --counterfactuals: invalid choice: 'approximate'"),
    (['--fractions', '0'], 'label fraction must be in (0, 1], got 0'),
    (['--size', '60'], '--size must be divisible by 8'),
    (['--epochs', '0'], 'argument --epochs: expected an integer >= 1, got 0'),
    (['--patients', '5'], 'argument --patients: expected an integer >= 20, got 5'),
    (['--lr', '-1'], '--lr must be a positive number'),
]

@pytest.mark.parametrize('args,message', BAD)
def test_bad_arguments_exit_2(args, message, capsys):
    from medcl_nb.counterfactual import medcl_counterfactual_cli
    with pytest.raises(SystemExit) as e: medcl_counterfactual_cli(args)
    assert e.value.code == 2
    assert message in capsys.readouterr().err

def test_bad_argument_exits_2_from_the_console():
    r = run('--prevalence', '1.5', timeout=300)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert 'argument --prevalence: a prevalence must be in (0, 1), got 1.5' in r.stderr, r.stderr

def test_tiny_run_writes_report_and_plots(tmp_path):
    out = tmp_path/'cf'
    r = run('--out', str(out), '--patients', '45', '--size', '32', '--epochs', '1', '--bs', '16', '--fractions', '0.5', '1.0',
            '--draws', '2', '--boot', '30', '--generator-steps', '20', '--classifier-epochs', '1', '--device', 'cpu', '--no-progress')
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert 'rare in training' in r.stdout and 'sex gap' in r.stdout and '95% CI' in r.stdout        # the printed table
    for f in ('report.json', 'summary.json', 'auc_by_scanner.png', 'sex_gap.png', 'generator.png', 'generator.pth'):
        assert (out/f).stat().st_size > 0, f
    report = json.loads((out/'report.json').read_text(), parse_constant=lambda c: pytest.fail(f'report.json holds {c}: not strict JSON'))
    assert report['config']['seeds'] == [0] and report['config']['epochs'] == 1 and report['config']['fractions'] == [0.5, 1.0]
    rows = report['rows']
    need = {'method', 'counterfactuals', 'fraction', 'seed', 'attribute', 'group', 'auc', 'auc_lo', 'auc_hi', 'diff', 'lo', 'hi'}
    assert need <= set(rows[0]), set(rows[0])
    assert {(r['method'], r['counterfactuals']) for r in rows} == {('random', 'none'), ('simclr', 'none'), ('cf-aug', 'exact'),
            ('cf-simclr', 'exact'), ('cf-aug', 'learned'), ('cf-simclr', 'learned')}
    assert {(r['attribute'], r['group']) for r in rows} == {('scanner', 'scanner_A'), ('scanner', 'scanner_B'), ('scanner', 'scanner_C'),
                                                          ('sex', 'M'), ('sex', 'F')}
    assert all(r['diff'] is None for r in rows if r['method'] == 'simclr')       # simclr is the reference
    judge = {(j['counterfactual'], j['target']): j for j in report['generator']['judge']}
    assert judge['exact', 'all']['mae'] == 0 and judge['exact', 'all']['reversibility_mae'] == 0
    assert report['sex_gap'] and report['world']['factual']['train']['images']
    assert json.loads((out/'summary.json').read_text())['table'] == report['table']
