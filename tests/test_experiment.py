"""The main job's console script, `medcl_experiment` (medcl_nb.experiment:medcl_experiment_cli):
its help, its argument checks (exit status 2 with a message naming the argument), and a tiny end-to-end
run on data_samples/ that must write report.json and the plots."""
import json, math, shutil, subprocess, sys
from configparser import ConfigParser
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parent.parent

def _cmd():
    "The installed console script, or the same entry point through the interpreter (package not installed)."
    beside = Path(sys.executable).parent/'medcl_experiment'          # the venv's script, activated or not
    exe = str(beside) if beside.exists() else shutil.which('medcl_experiment')
    if exe: return [exe]
    # what the generated script does, sys.exit included: a CLI that returns a value would exit 1 here too
    return [sys.executable, '-c', "import sys; sys.argv[0] = 'medcl_experiment'; "
            "from medcl_nb.experiment import medcl_experiment_cli; sys.exit(medcl_experiment_cli())"]

def run(*args, timeout=600):
    return subprocess.run(_cmd() + list(args), cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env={**__import__('os').environ, 'MPLBACKEND': 'Agg', 'PYTHONPATH': str(ROOT)})

def test_entry_point_declared():
    cfg = ConfigParser(); cfg.read(ROOT/'settings.ini')
    assert 'medcl_experiment=medcl_nb.experiment:medcl_experiment_cli' in cfg['DEFAULT']['console_scripts'].split()
    from medcl_nb.experiment import medcl_experiment_cli
    assert callable(medcl_experiment_cli)

def test_help():
    r = run('--help', timeout=120)
    assert r.returncode == 0, r.stderr
    for opt in ('--data', '--method', '--methods', '--epochs', '--fractions', '--out', '--device'): assert opt in r.stdout

BAD = [
    (['--fractions', '0'], 'label fraction must be in (0, 1], got 0'),
    (['--fractions', '0.1', '1.5'], 'label fraction must be in (0, 1], got 1.5'),
    (['--fractions', 'all'], "label fraction must be a number in (0, 1], got 'all'"),
    (['--epochs', '-1'], 'argument --epochs: expected an integer >= 1, got -1'),
    (['--draws', '0'], 'argument --draws: expected an integer >= 1, got 0'),
    (['--data', 'no/such/folder'], '--data: folder not found: no/such/folder'),
    (['--method', 'byol'], "argument --method: invalid choice: 'byol'"),
    (['--methods', 'moco', 'byol'], "argument --methods: invalid choice: 'byol'"),
    (['--method', 'moco', '--methods', 'convirt'], '--method and --methods: give one of them'),
    (['--methods', 'moco', 'moco'], '--methods: each method once, got moco moco'),
    (['--lr', '0'], '--lr must be a positive number, got 0.0'),
    (['--data', 'no/such/pneumoniamnist.npz'], '--data: MedMNIST file not found: no/such/pneumoniamnist.npz'),
]

def test_bad_argument_exits_2_from_the_console():
    "Through the console script (a fresh process): `--fractions 0` stops at once with status 2 and says why."
    r = run('--fractions', '0', timeout=120)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert 'argument --fractions: a label fraction must be in (0, 1], got 0' in r.stderr, r.stderr

@pytest.mark.parametrize('args,message', BAD)
def test_bad_arguments_exit_2(args, message, capsys, monkeypatch):
    "The entry point's function itself, in this process (each case would otherwise cost a torch import)."
    from medcl_nb.experiment import medcl_experiment_cli
    monkeypatch.chdir(ROOT)
    with pytest.raises(SystemExit) as e: medcl_experiment_cli(args)
    assert e.value.code == 2
    assert message in capsys.readouterr().err

def test_unrecognized_folder_exits_2(tmp_path, capsys):
    from medcl_nb.experiment import medcl_experiment_cli
    with pytest.raises(SystemExit) as e: medcl_experiment_cli(['--data', str(tmp_path), '--out', str(tmp_path/'out')])
    assert e.value.code == 2
    assert 'no chest radiograph dataset' in capsys.readouterr().err

@pytest.mark.skipif(not (ROOT/'data_samples'/'cxr').is_dir(), reason='data_samples/cxr not generated (medcl_samples)')
def test_tiny_run_writes_report_and_plots(tmp_path):
    out = tmp_path/'exp'
    r = run('--data', 'data_samples', '--epochs', '1', '--size', '32', '--max-patients', '150', '--draws', '2', '--boot', '30',
            '--fractions', '0.2', '1.0', '--few-shot', '2', '--bs', '32', '--device', 'cpu', '--no-progress', '--out', str(out))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert 'difference' in r.stdout and '95% CI' in r.stdout          # the printed table
    for f in ('report.json', 'label_efficiency.png', 'per_label_auc.png'): assert (out/f).stat().st_size > 0, f
    text = (out/'report.json').read_text()
    report = json.loads(text, parse_constant=lambda c: pytest.fail(f'report.json holds {c}: not strict JSON'))
    assert report['config']['epochs'] == 1 and report['config']['fractions'] == [0.2, 1.0] and report['seed'] == 0
    assert report['config']['methods'] == ['moco'] and report['config']['lr'] == 1e-3     # MoCo's recipe rate when --lr is not given
    assert report['zero_shot'] is None and report['retrieval'] is None and report['localization'] is None   # image-only
    assert {'torch', 'fastai', 'sklearn', 'medcl_nb'} <= set(report['versions'])
    assert set(report['encoders']) >= {'moco', 'random'}
    assert len(report['pretraining']['history']) == 1
    summary = [s for s in report['linear_eval']['summary'] if s['label'] == 'mean']
    assert sorted(s['fraction'] for s in summary) == [0.2, 1.0]
    for s in summary:
        assert s['lo'] <= s['diff'] <= s['hi'] and s['reference'] == 'random' and s['n_boot'] > 0
    metrics = report['linear_eval']['metrics']
    assert all(0 <= m['auc'] <= 1 for m in metrics)
    assert {m['draw'] for m in metrics if m['fraction'] == 0.2} == {0, 1}
    assert report['dataset']['train']['patients'] + report['dataset']['valid']['patients'] + report['dataset']['test']['patients'] <= 150

def test_cli_defaults_match_the_function_defaults(monkeypatch):
    "`medcl_experiment` with no options runs the same recipe as `run_experiment()` and `pretrain()` called with no options."
    import inspect
    from medcl_nb.experiment import parse_experiment_args, run_experiment, pretrain
    monkeypatch.chdir(ROOT)
    a = parse_experiment_args([])
    run_d = {k: v.default for k, v in inspect.signature(run_experiment).parameters.items()}
    pre_d = {k: v.default for k, v in inspect.signature(pretrain).parameters.items()}
    for k in ('method', 'epochs', 'arch', 'size', 'bs', 'lr', 'boot', 'draws', 'queue_size', 'momentum', 'temperature', 'seed'):
        assert getattr(a, k) == run_d[k], (k, getattr(a, k), run_d[k])
    assert list(a.fractions) == list(run_d['fractions'])
    assert a.methods == ['moco'] and run_d['methods'] is None          # the default run is the MoCo-only job
    for k in ('method', 'arch', 'epochs', 'bs', 'lr', 'size', 'seed'): assert pre_d[k] == run_d[k], (k, pre_d[k], run_d[k])
    # data_samples has ~1,400 training images: a longer queue would hold each image's own old keys as negatives
    assert a.queue_size < 1000

class _Stop(Exception): pass

@pytest.mark.parametrize('bs', [16, 48])
def test_pretrain_passes_batch_size_and_size_to_the_dataloaders(bs, monkeypatch):
    "`pretrain(bs=...)` reaches `contrastive_dls` (a wrong default or a dropped argument would silently change the recipe)."
    import pandas as pd
    import medcl_nb.data.blocks as blocks
    from medcl_nb.experiment import pretrain
    seen = {}
    def fake(df, **kw): seen.update(kw, n=len(df)); raise _Stop
    monkeypatch.setattr(blocks, 'contrastive_dls', fake)
    df = pd.DataFrame(dict(path=['a', 'b', 'c', 'd'], patient_id=[1, 2, 3, 4], split=['train', 'train', 'valid', 'test']))
    with pytest.raises(_Stop): pretrain(df, bs=bs, size=48, progress=False)
    assert seen['bs'] == bs and seen['size'] == 48 and seen['n'] == 3      # the test image is never seen by pretraining
    tr, va = seen['splits']
    assert set(tr.split) == {'train'} and set(va.split) == {'valid'}

@pytest.mark.parametrize('acquisition, extra', [(True, ()), (False, ()), (True, ('gaussian_blur',))])
def test_pretrain_uses_acquisition_jitter_unless_told_not_to(acquisition, extra, monkeypatch):
    "The default recipe pretrains with AcquisitionJitter (the fix for the exposure shortcut); `acquisition_aug=False` drops it."
    import pandas as pd
    import medcl_nb.data.blocks as blocks
    from medcl_nb.experiment import pretrain
    seen = {}
    def fake(df, **kw): seen.update(kw); raise _Stop
    monkeypatch.setattr(blocks, 'contrastive_dls', fake)
    df = pd.DataFrame(dict(path=['a', 'b', 'c'], patient_id=[1, 2, 3], split=['train', 'train', 'valid']))
    with pytest.raises(_Stop): pretrain(df, progress=False, acquisition_aug=acquisition, extra_aug=extra)
    names = [type(t).__name__ for t in seen['aug'].tfms]
    assert names[0] == 'RandomAffine' and ('AcquisitionJitter' in names) == acquisition
    assert ('GaussianBlur' in names) == bool(extra)

def test_cli_no_acquisition_aug_reaches_run_experiment(monkeypatch):
    "`--no-acquisition-aug` turns the jitter off in the run; without it the run uses it (and records it in the config)."
    import medcl_nb.experiment as ex
    seen = []
    def fake(**kw): seen.append(kw['acquisition_aug']); raise FileNotFoundError('stop here')
    monkeypatch.setattr(ex, 'run_experiment', fake)
    monkeypatch.chdir(ROOT)
    for argv in ([], ['--no-acquisition-aug']):
        with pytest.raises(SystemExit): ex.medcl_experiment_cli(argv)
    assert seen == [True, False]

def test_default_learning_rates_are_each_methods_recipe():
    "--lr unset: MoCo and SimCLR train at 1e-3 (the main job's recipe), ConVIRT at 1e-4 (notebook 10: 1e-3 collapses it)."
    from medcl_nb.experiment import default_lr, PRETRAINERS
    assert {m: default_lr(m) for m in ('moco', 'simclr', 'convirt')} == {'moco': 1e-3, 'simclr': 1e-3, 'convirt': 1e-4}
    assert {'moco', 'simclr', 'convirt'} <= set(PRETRAINERS)

def test_registry_contract_with_a_plugged_in_method(tmp_path, monkeypatch):
    """A method registered in PRETRAINERS runs through the whole protocol: its encoder is probed beside random init and
    compared with MoCo, and its named `evaluations` land in the report under their name (the slot LoVT's localization uses)."""
    import pandas as pd, torch
    import medcl_nb.experiment as ex
    from medcl_nb.models import encoder as make_encoder
    calls = {}
    def fake(df, *, arch='resnet18', epochs=12, bs=32, lr=0.5, size=64, device=None, seed=0, progress=True, **kw):
        calls.update(kw, lr=lr, n_train=int((df.split == 'train').sum()))
        torch.manual_seed(seed + 1)
        loc = lambda d, images, labels, seed, n_boot: pd.DataFrame(dict(metric=['pointing game'], value=[0.5], n=[len(d)]))
        return ex.Pretrained(make_encoder(arch).eval(), [dict(loss=1.0)], evaluations={'localization': loc})
    def fake_moco(df, *, lr=1e-3, **kw): return ex.Pretrained(make_encoder('resnet18').eval(), [dict(loss=2.0)])
    monkeypatch.setitem(ex.PRETRAINERS, 'fake', fake)
    monkeypatch.setitem(ex.PRETRAINERS, 'moco', fake_moco)
    report = ex.run_experiment(ROOT/'data_samples', methods=['moco', 'fake'], epochs=1, size=32, max_patients=80, draws=1, boot=20,
                               fractions=(1.0,), few_shot_k=(), out=tmp_path, device='cpu', progress=False)
    assert calls['lr'] == 0.5 and calls['temperature'] == 0.1 and 'queue_size' not in calls and calls['acquisition_aug'] is True
    assert set(report['encoders']) == {'moco', 'fake', 'random'} and report['config']['lrs']['fake'] == 0.5
    refs = {(s['encoder'], s['reference']) for s in report['linear_eval']['summary']}
    assert refs == {('moco', 'random'), ('fake', 'random'), ('fake', 'moco')}
    assert report['localization'] == [dict(metric='pointing game', value=0.5, n=report['dataset']['test']['images'], encoder='fake')]   # run on the test rows
    assert 'AUC fake' in report['table'] and 'AUC moco' in report['table']
    with pytest.raises(ValueError, match='unknown'): ex.run_experiment(ROOT/'data_samples', methods=['nope'], out=tmp_path)
    monkeypatch.setitem(ex.PRETRAINERS, 'no_lr', lambda df, **kw: None)
    with pytest.raises(ValueError, match='must take an `lr` argument'): ex.run_experiment(ROOT/'data_samples', methods=['no_lr'], out=tmp_path)
    with pytest.raises(ValueError, match='baseline'):
        monkeypatch.setitem(ex.PRETRAINERS, 'random', fake); ex.run_experiment(ROOT/'data_samples', methods=['random'], out=tmp_path)

@pytest.mark.skipif(not (ROOT/'data_samples'/'cxr').is_dir(), reason='data_samples/cxr not generated (medcl_samples)')
def test_tiny_multi_method_run_with_text_evaluations(tmp_path):
    "`--methods moco convirt lovt`: one report with every method against random init and MoCo, zero-shot, retrieval and localization."
    out = tmp_path/'multi'
    r = run('--data', 'data_samples', '--methods', 'moco', 'convirt', 'lovt', '--epochs', '1', '--size', '32', '--max-patients', '150',
            '--draws', '2', '--boot', '30', '--fractions', '0.2', '1.0', '--few-shot', '2', '--device', 'cpu', '--no-progress',
            '--out', str(out), timeout=1200)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    for text in ('AUC convirt', 'AUC moco', 'zero-shot', 'retrieval', 'chance'): assert text in r.stdout, text
    report = json.loads((out/'report.json').read_text(), parse_constant=lambda c: pytest.fail(f'report.json holds {c}'))
    assert report['config']['methods'] == ['moco', 'convirt', 'lovt'] and report['config']['lrs'] == {'moco': 1e-3, 'convirt': 1e-4, 'lovt': 1e-4}
    assert set(report['encoders']) >= {'moco', 'convirt', 'lovt', 'random'}
    assert set(report['pretraining']['methods']) == {'moco', 'convirt', 'lovt'} and len(report['pretraining']['methods']['convirt']['history']) == 1
    mean = [s for s in report['linear_eval']['summary'] if s['label'] == 'mean']
    assert {(s['encoder'], s['reference']) for s in mean} >= {('moco', 'random'), ('convirt', 'random'), ('convirt', 'moco'), ('lovt', 'random'), ('lovt', 'moco')}
    for s in mean: assert s['lo'] <= s['diff'] <= s['hi']
    assert {m['encoder'] for m in report['linear_eval']['metrics']} >= {'moco', 'convirt', 'lovt', 'random'}
    zs = report['zero_shot']
    assert zs and {z['encoder'] for z in zs} == {'convirt', 'lovt'} and all(z['lo'] <= z['auc'] <= z['hi'] for z in zs)
    ret = report['retrieval']
    assert {(x['task'], x['relevance']) for x in ret} == {('image→report', 'paired'), ('report→image', 'paired'),
        ('image→report', 'same finding, other patients'), ('report→image', 'same finding, other patients')}
    assert all(0 <= x['chance'] <= 1 and 0 <= x['value'] <= 1 for x in ret)
    loc = report['localization']                              # ConVIRT's too (notebook 11): pointing by similarity, cell probe
    assert loc and {x['encoder'] for x in loc} == {'convirt', 'lovt'}
    tasks = lambda enc: {(x['task'], x['scorer']) for x in loc if x['encoder'] == enc}
    assert tasks('convirt') >= {('pointing game', 'similarity'), ('cell probe', 'frozen features'), ('cell probe', 'random init')}
    assert ('pointing game', 'attention') not in tasks('convirt')                         # no cross-modal attention in ConVIRT
    assert tasks('lovt') >= {('pointing game', 'attention'), ('pointing game', 'similarity'), ('cell probe', 'frozen features'),
        ('cell probe', 'random init'), ('cell probe', 'cell position only'), ('cell probe', 'frozen features - random init')}
    for x in loc:
        assert x['lo'] <= x['value'] <= x['hi'] and x['n'] > 0
        if x['task'] == 'pointing game' and x['encoder'] == 'lovt':
            assert 0 < x['chance'] < 1 and x['grid'] == '2x2'                                # 32 px at output stride 16
    assert {'pretrain_moco_s', 'pretrain_convirt_s', 'pretrain_lovt_s', 'text_eval_s'} <= set(report['times'])

def test_lovt_registered_with_its_recipe():
    "LoVT (notebook 11) is a registry entry with ConVIRT's rate; its localization evaluation needs finding boxes."
    import pandas as pd
    from medcl_nb.experiment import PRETRAINERS, default_lr, localization_evaluation, experiment_parser
    assert 'lovt' in PRETRAINERS and default_lr('lovt') == 1e-4
    assert 'lovt' in next(a for a in experiment_parser()._actions if a.dest == 'methods').choices
    assert localization_evaluation(None, pd.DataFrame({'path': ['nowhere/files/p10/x.png'], 'split': ['test']})) is None

def _pneumoniamnist(path, sizes=(('train', 80), ('val', 24), ('test', 40)), seed=0):
    "A file in PneumoniaMNIST's exact layout (uint8 images (N, 28, 28), uint8 labels (N, 1)); positives carry a bright blob."
    import numpy as np
    rng, arrays = np.random.default_rng(seed), {}
    yy, xx = np.mgrid[:28, :28]
    blob = 120 * np.exp(-((yy - 14) ** 2 + (xx - 10) ** 2) / 20)
    for split, n in sizes:
        y = (np.arange(n) % 2).astype(np.uint8)[:, None]
        x = rng.normal(90, 25, (n, 28, 28)) + y[:, :, None] * blob
        arrays[f'{split}_images'] = x.clip(0, 255).astype(np.uint8)
        arrays[f'{split}_labels'] = y
    np.savez_compressed(path, **arrays)
    return path

def test_medmnist_file_runs_the_main_job(tmp_path):
    "`--data file.npz` (MedMNIST 2D): the main job runs unchanged, each image its own patient, and the report says so."
    npz = _pneumoniamnist(tmp_path/'pneumoniamnist.npz')
    out = tmp_path/'exp'
    r = subprocess.run(_cmd() + ['--data', str(npz), '--epochs', '1', '--size', '28', '--bs', '16', '--draws', '1', '--boot', '10',
                                 '--fractions', '1.0', '--few-shot', '1', '--device', 'cpu', '--no-progress', '--out', str(out)],
                       cwd=ROOT, capture_output=True, text=True, timeout=600,
                       env={**__import__('os').environ, 'MPLBACKEND': 'Agg', 'PYTHONPATH': str(ROOT), 'TMPDIR': str(tmp_path)})
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert 'each image counts as its own patient' in r.stdout
    report = json.loads((out/'report.json').read_text())
    ds = report['dataset']
    assert 'MedMNIST has no patient ids, so each image counts as its own patient' in ds['source'] and 'pneumoniamnist.npz' in ds['source']
    assert ds['labels'] == ['Pneumonia'] and "official" in ds['split']
    for split, n in (('train', 80), ('valid', 24), ('test', 40)): assert ds[split]['images'] == ds[split]['patients'] == n, (split, ds[split])
    assert ds['test']['positives']['Pneumonia'] == 20
    assert (tmp_path/'medcl_medmnist').is_dir()                      # the PNGs went to the (redirected) temp folder
    summary = [s for s in report['linear_eval']['summary'] if s['label'] == 'mean']
    assert [s['fraction'] for s in summary] == [1.0] and all(0 <= m['auc'] <= 1 for m in report['linear_eval']['metrics'])

def test_two_processes_write_one_report(tmp_path):
    """`torchrun --nproc_per_node 2 -m medcl_nb.experiment ...` on CPUs: both ranks pretrain under DDP (gloo),
    rank 0 alone evaluates and writes. The two processes get the environment torchrun gives them, and each its own
    --out, so that anything rank 1 wrote would show; their CPU time is measured (children's rusage)."""
    import os, resource, socket
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]
    args = ['--data', 'data_samples', '--epochs', '1', '--size', '32', '--max-patients', '60', '--draws', '1', '--boot', '20',
            '--fractions', '1.0', '--few-shot', '--bs', '16', '--no-progress']
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    procs = [subprocess.Popen([sys.executable, '-m', 'medcl_nb.experiment', *args, '--out', str(tmp_path/f'rank{r}')], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, 'MPLBACKEND': 'Agg', 'PYTHONPATH': str(ROOT), 'OMP_NUM_THREADS': '1',
                                   'MASTER_ADDR': '127.0.0.1', 'MASTER_PORT': str(port), 'RANK': str(r), 'LOCAL_RANK': str(r),
                                   'WORLD_SIZE': '2', 'LOCAL_WORLD_SIZE': '2'}) for r in range(2)]
    try: outs = [p.communicate(timeout=400) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None: p.kill()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(f"2 processes: {after.ru_utime - before.ru_utime:.1f} s user + {after.ru_stime - before.ru_stime:.1f} s sys CPU")
    for p, (out, err) in zip(procs, outs): assert p.returncode == 0, err[-3000:]
    report = json.loads((tmp_path/'rank0'/'report.json').read_text())
    assert sorted(f.name for f in (tmp_path/'rank0').iterdir()) == ['checkpoints', 'encoders', 'label_efficiency.png', 'log.txt', 'per_label_auc.png',
                                                                     'report.json', 'subgroups.png']
    assert any('pretrained on 2 processes (torchrun, gloo), 8 images each of the global batch 16' in n for n in report['notes'])
    assert len(report['pretraining']['history']) == 1 and report['linear_eval']['summary']
    assert 'report:' in outs[0][0] and 'report:' not in outs[1][0]      # rank 1 printed no table
    assert list((tmp_path/'rank1').iterdir()) == []                    # and wrote nothing

@pytest.mark.skipif(not (ROOT/'data_samples'/'cxr').is_dir(), reason='data_samples/cxr not generated (medcl_samples)')
def test_two_pretraining_seeds_widen_the_interval(tmp_path, monkeypatch):
    """`--pretrain-seeds 2` through the console entry point, with a stand-in pretrainer whose two seeds differ a lot
    (seed 0: the raw pixels, informative; seed 1: noise): the combined interval (seeds x test patients) is at least as wide
    as each seed's own interval (conditional on that seed's encoders), the first seed's rows are the report's usual summary,
    and the table says which interval is which. (With seeds that agree, averaging them can give a narrower interval: see 09.)"""
    import torch
    from torch import nn
    import medcl_nb.experiment as ex
    class Noise(nn.Module):
        def __init__(self): super().__init__(); self.g = torch.Generator().manual_seed(0)
        def forward(self, x): return torch.randn(len(x), 16, generator=self.g)
    seen = []
    def stand_in(df, *, seed=0, lr=1e-3, **kw):
        seen.append(seed)
        return ex.Pretrained((nn.Flatten() if seed == 0 else Noise()).eval(), [dict(loss=1.0)])
    monkeypatch.setitem(ex.PRETRAINERS, 'moco', stand_in)
    out = tmp_path/'seeds'
    ex.medcl_experiment_cli(['--data', str(ROOT/'data_samples'), '--size', '16', '--max-patients', '300', '--draws', '1', '--boot', '100',
                             '--fractions', '1.0', '--few-shot', '--device', 'cpu', '--no-progress', '--pretrain-seeds', '2', '--out', str(out)])
    assert seen == [0, 1]
    report = json.loads((out/'report.json').read_text(), parse_constant=lambda c: pytest.fail(f'report.json holds {c}'))
    ps = report['pretrain_seeds']
    assert report['config']['pretrain_seeds'] == 2 and ps['seeds'] == [0, 1]
    combined = [r for r in ps['combined'] if r['label'] == 'mean']
    per = [r for r in ps['per_seed'] if r['label'] == 'mean']
    assert len(combined) == 1 and len(per) == 2 and combined[0]['interval'] == 'pretraining seeds x test patients'
    c = combined[0]
    for r in per:
        assert r['interval'] == "test patients, conditional on this seed's encoders"
        assert c['hi'] - c['lo'] >= r['hi'] - r['lo'], (c, r)
    assert c['lo'] <= min(r['diff'] for r in per) and c['hi'] >= max(r['diff'] for r in per)   # it covers both seeds' effects
    assert math.isclose(c['diff'], sum(r['diff'] for r in per) / 2, abs_tol=1e-12)
    first = [r for r in report['linear_eval']['summary'] if r['label'] == 'mean'][0]       # seed 0 = the usual summary
    seed0 = [r for r in per if r['pretrain_seed'] == 0][0]
    assert all(math.isclose(first[k], seed0[k], abs_tol=1e-12) for k in ('diff', 'lo', 'hi'))
    assert 'seeds x test patients' in report['table'] and 'conditional on' in report['table']
    assert {'pretrain_moco_seed1_s', 'pretrain_moco_seed1_cpu_s'} <= set(report['times'])
    with pytest.raises(ValueError, match='pretrain_seeds must be an integer >= 1'): ex.run_experiment(ROOT/'data_samples', pretrain_seeds=0, out=tmp_path)
