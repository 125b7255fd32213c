"""`medcl_segmentation` (medcl_nb.segmentation:medcl_segmentation_cli): help, argument checks (exit status 2 naming the
argument), bad data (a video shorter than its traced frames, no EchoNet layout), and an end-to-end run on the real
EchoNet-Dynamic layout (tests/fixtures/echonet: 112x112 AVIs, FileList.csv, VolumeTracings.csv) that must write the report.
MONAI agreement of the metrics on batches of 112x112 masks (the notebook checks small ones)."""
import importlib, json, os, shutil, subprocess, sys, warnings
from pathlib import Path
import numpy as np, pytest, torch

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT/'tests'/'fixtures'/'echonet'/'EchoNet-Dynamic'
ENTRY = 'medcl_segmentation=medcl_nb.segmentation:medcl_segmentation_cli'

def _cmd():
    "The installed console script, or the same entry point through the interpreter (before settings.ini declares it)."
    beside = Path(sys.executable).parent/'medcl_segmentation'
    exe = str(beside) if beside.exists() else shutil.which('medcl_segmentation')
    if exe: return [exe]
    return [sys.executable, '-c', "import sys; sys.argv[0] = 'medcl_segmentation'; "
            "from medcl_nb.segmentation import medcl_segmentation_cli; sys.exit(medcl_segmentation_cli())"]

def run(*args, timeout=900):
    env = {**os.environ, 'MPLBACKEND': 'Agg', 'PYTHONPATH': str(ROOT), 'OMP_NUM_THREADS': '1'}
    return subprocess.run(_cmd() + list(args), cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)

def test_entry_point_resolves():
    "The line for settings.ini's console_scripts names a callable."
    module, func = ENTRY.split('=')[1].split(':')
    assert callable(getattr(importlib.import_module(module), func))

def test_help():
    r = run('--help', timeout=600)
    assert r.returncode == 0, r.stderr
    for opt in ('--data', '--out', '--fractions', '--draws', '--pretrain-epochs', '--steps', '--device', '--imagenet-weights'): assert opt in r.stdout

BAD = [(['--fractions', '0'], 'label fraction must be in (0, 1], got 0'),
       (['--fractions', 'five'], "label fraction must be a number in (0, 1], got 'five'"),
       (['--draws', '0'], 'argument --draws: expected an integer >= 1, got 0'),
       (['--steps', '-3'], 'argument --steps: expected an integer >= 1, got -3'),
       (['--lr', '0'], '--lr must be a positive number, got 0.0'),
       (['--dice-weight', '-1'], '--dice-weight must be a number >= 0, got -1.0'),
       (['--temperature', 'nan'], '--temperature must be a positive number'),
       (['--data', 'no/such/folder'], '--data: folder not found: no/such/folder'),
       (['--seed', '1', '1'], '--seed: the seeds must be distinct, got [1, 1]')]

@pytest.mark.parametrize('args,message', BAD)
def test_bad_arguments_exit_2(args, message, capsys, monkeypatch):
    from medcl_nb.segmentation import medcl_segmentation_cli
    monkeypatch.chdir(ROOT)
    with pytest.raises(SystemExit) as e: medcl_segmentation_cli(args)
    assert e.value.code == 2
    assert message in capsys.readouterr().err

def test_folder_without_echonet_exits_2(tmp_path, capsys):
    from medcl_nb.segmentation import medcl_segmentation_cli
    with pytest.raises(SystemExit) as e: medcl_segmentation_cli(['--data', str(tmp_path), '--out', str(tmp_path/'out')])
    assert e.value.code == 2 and 'no EchoNet-Dynamic layout' in capsys.readouterr().err

def test_video_shorter_than_its_tracing_names_the_row(tmp_path, capsys):
    "A traced frame past the end of its video: exit 2, naming the FileList row and the file."
    root = tmp_path/'EchoNet-Dynamic'
    shutil.copytree(FIXTURE, root)
    tr = (root/'VolumeTracings.csv').read_text().splitlines()
    tr = [l[:l.rindex(',')] + ',99' if l.startswith('0X1000000000000002.avi') and l.endswith(',13') else l for l in tr]
    (root/'VolumeTracings.csv').write_text('\n'.join(tr) + '\n')
    from medcl_nb.segmentation import medcl_segmentation_cli
    with pytest.raises(SystemExit) as e: medcl_segmentation_cli(['--data', str(root), '--out', str(tmp_path/'out'), '--no-progress'])
    err = capsys.readouterr().err
    assert e.value.code == 2 and 'df row 1 (FileName 0X1000000000000002)' in err and 'traced frame 99 but the video has 32 frames' in err

def test_cli_defaults_match_the_function_defaults(monkeypatch):
    import inspect
    from medcl_nb.segmentation import parse_segmentation_args, run_segmentation
    monkeypatch.chdir(ROOT)
    a, d = parse_segmentation_args([]), {k: v.default for k, v in inspect.signature(run_segmentation).parameters.items()}
    for k in ('arch', 'draws', 'pretrain_epochs', 'pretrain_bs', 'pretrain_lr', 'temperature', 'steps', 'bs', 'lr', 'dice_weight', 'boot'):
        assert getattr(a, k) == d[k], (k, getattr(a, k), d[k])
    assert a.seed == [d['seed']]                                  # --seed takes several seeds; the default is one run
    assert list(a.fractions) == list(d['fractions'])

def test_real_layout_end_to_end(tmp_path):
    "The EchoNet-Dynamic fixture (112x112 MJPG AVIs, one untraced video, a 768x1024 FileList row) runs with no change."
    out = tmp_path/'seg'
    r = run('--data', str(FIXTURE), '--out', str(out), '--pretrain-epochs', '1', '--steps', '2', '--bs', '2', '--draws', '1',
            '--fractions', '0.5', '1', '--boot', '20', '--device', 'cpu', '--no-progress')
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert 'Dice [95% CI]' in r.stdout and 'Dice - random' in r.stdout
    for f in ('report.json', 'dice_vs_fraction.png', 'predictions.png', 'ef.png'): assert (out/f).stat().st_size > 0, f
    report = json.loads((out/'report.json').read_text(), parse_constant=lambda c: pytest.fail(f'report.json holds {c}'))
    assert report['dataset']['frame_size'] == [112, 112] and report['dataset']['patients'] == {'train': 2, 'valid': 1, 'test': 1}
    assert {s['encoder'] for s in report['summary']} >= {'simclr', 'random'}
    assert sorted({s['fraction'] for s in report['summary']}) == [0.5, 1.0]
    for s in report['summary']: assert s['dice_lo'] <= s['dice'] <= s['dice_hi'] and 0 <= s['dice'] <= 1
    assert any('fewer than 2 traced frames' in n for n in report['notes'])       # the untraced video is reported, not silently lost
    assert len(report['per_frame']) == 2 * 2 * 2                               # 2 test frames x 2 encoders x 2 fractions

def test_metrics_match_monai_at_echonet_size():
    "Dice, IoU and HD95 of our metrics and MONAI's on 112x112 masks with stray pixels and holes."
    from monai.metrics import compute_dice, compute_iou, compute_hausdorff_distance
    from medcl_nb.segmentation import dice_score, iou_score, hausdorff_distance
    g = torch.Generator().manual_seed(3)
    yy, xx = torch.meshgrid(torch.arange(112), torch.arange(112), indexing='ij')
    def masks():
        c, r = 30 + 50 * torch.rand(24, 2, generator=g), 8 + 25 * torch.rand(24, 1, 1, generator=g)
        m = ((yy - c[:, :1, None]) ** 2 + (xx - c[:, 1:, None]) ** 2 / 0.4) < r ** 2
        return m ^ (torch.rand(24, 112, 112, generator=g) < 0.003)
    p, t = masks(), masks()
    one = lambda f, **kw: f(p[:, None].float(), t[:, None].float(), include_background=True, **kw)[:, 0].double()
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        assert torch.allclose(dice_score(p, t), one(compute_dice), atol=1e-6)
        assert torch.allclose(iou_score(p, t), one(compute_iou), atol=1e-6)
        assert torch.allclose(hausdorff_distance(p, t, 95), one(compute_hausdorff_distance, percentile=95), atol=1e-4)
        assert torch.allclose(hausdorff_distance(p, t, None), one(compute_hausdorff_distance), atol=1e-4)

def test_two_seeds_write_one_report_each_and_the_summary(tmp_path):
    "--seed 0 1: OUT/seed_0, OUT/seed_1 and OUT/seeds.json with t-intervals over the two seeds."
    out = tmp_path/'seg'
    r = run('--data', str(FIXTURE), '--out', str(out), '--pretrain-epochs', '1', '--steps', '2', '--bs', '2', '--draws', '1',
            '--fractions', '0.5', '1', '--boot', '20', '--device', 'cpu', '--no-progress', '--seed', '0', '1')
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert 'means over 2 pretraining seeds' in r.stdout
    for s in (0, 1): assert json.loads((out/f'seed_{s}'/'report.json').read_text())['seed'] == s
    seeds = json.loads((out/'seeds.json').read_text())
    assert seeds['seeds'] == [0, 1] and {(row['encoder'], row['fraction']) for row in seeds['summary']} == {(e, f) for e in ('simclr', 'random') for f in (0.5, 1.0)}
    for row in seeds['summary']: assert row['seeds'] == 2 and row['dice_lo'] <= row['dice'] <= row['dice_hi']
