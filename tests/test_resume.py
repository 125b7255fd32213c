"""The main job keeps its work (issue 17): checkpoints, exact resume after an interruption (in process, and a real
`medcl_experiment` killed with SIGKILL), the saved encoder reloaded with weights_only=True, and the bad inputs."""
import json, os, signal, subprocess, sys, time
from pathlib import Path
import pytest, torch

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(not (ROOT/'data_samples'/'cxr').is_dir(), reason='data_samples/cxr not generated (medcl_samples)')
TINY = ['--data', 'data_samples', '--max-patients', '60', '--size', '16', '--epochs', '2', '--draws', '1', '--boot', '10',
        '--fractions', '1.0', '--few-shot', '--device', 'cpu', '--no-progress']

def _cli(*args):
    "The console script's entry point in a fresh interpreter (what `medcl_experiment ...` runs)."
    return [sys.executable, '-c', "import sys; sys.argv[0] = 'medcl_experiment'; "
            "from medcl_nb.experiment import medcl_experiment_cli; sys.exit(medcl_experiment_cli())", *args]

ENV = {**os.environ, 'MPLBACKEND': 'Agg', 'PYTHONPATH': str(ROOT), 'OMP_NUM_THREADS': '1', 'MKL_NUM_THREADS': '1'}

def _state(file): return torch.load(file, map_location='cpu', weights_only=True)

def _same(a, b):
    assert a.keys() == b.keys()
    for k in a: assert torch.equal(a[k], b[k]), k

@pytest.fixture(scope='module')
def tiny_df():
    from medcl_nb.experiment import find_dataset, subsample_patients, prepare_splits
    df, _ = find_dataset(ROOT/'data_samples')
    df, _ = prepare_splits(subsample_patients(df, 40, 0))
    return df.reset_index(drop=True)

def _stop_at(epoch, batch=None):
    "A callback that interrupts fit after `epoch` (0-based), or after its `batch`-th training batch."
    from fastai.callback.core import Callback, CancelFitException
    class Stop(Callback):
        order = 100                                            # after PretrainCheckpoint (95) has saved
        def after_batch(self):
            if self.training and batch is not None and self.epoch == epoch and self.iter + 1 == batch: raise CancelFitException
        def after_epoch(self):
            if batch is None and self.epoch == epoch: raise CancelFitException
    return Stop()

@pytest.mark.parametrize('method', ['moco', 'simclr'])
def test_interrupted_pretraining_resumes_exactly(method, tiny_df, tmp_path):
    "Interrupted after epoch 1 of 2, or mid-epoch 2 (checkpoints every batch), then resumed: the same weights, bit for bit, and the same history."
    from medcl_nb.experiment import pretrain, Checkpointing
    kw = dict(method=method, epochs=2, bs=8, size=16, device='cpu', seed=0, progress=False,
              **(dict(queue_size=16, momentum=0.99) if method == 'moco' else {}))
    ref = pretrain(tiny_df, **kw)
    for name, stop, minutes in (('epoch', _stop_at(0), 30.), ('batch', _stop_at(1, 3), 1e-9)):
        ck = lambda resume: Checkpointing(tmp_path/name, dict(method=method, size=16), minutes=minutes, resume=resume)
        cut = pretrain(tiny_df, **kw, checkpoint=ck(False), cbs=[stop])
        st = _state(tmp_path/name/f'{method}.pt')
        assert (st['epoch'], st['batch']) == ((1, 0) if name == 'epoch' else (1, 3))
        assert len(cut.history) == 1
        with pytest.raises(AssertionError): _same(ref.encoder.state_dict(), cut.encoder.state_dict())   # the cut run is behind
        res = pretrain(tiny_df, **kw, checkpoint=ck(True))
        _same(ref.encoder.state_dict(), res.encoder.state_dict())
        _same(ref.learn.model.state_dict(), res.learn.model.state_dict())          # MoCo: key encoder and queue too
        assert res.history == ref.history and len(res.epoch_seconds) == 2

def test_checkpoint_from_another_run_is_refused(tiny_df, tmp_path):
    from medcl_nb.experiment import pretrain, Checkpointing, load_checkpoint
    kw = dict(method='simclr', epochs=1, bs=8, size=16, device='cpu', seed=0, progress=False)
    pretrain(tiny_df, **kw, checkpoint=Checkpointing(tmp_path, dict(method='simclr', arch='resnet18', size=16)))
    with pytest.raises(ValueError, match="size=16 there, 32 here"): load_checkpoint(tmp_path/'simclr.pt', dict(method='simclr', size=32))
    with pytest.raises(ValueError, match="arch='resnet18' there, 'resnet34' here"):
        load_checkpoint(tmp_path/'simclr.pt', dict(method='simclr', arch='resnet34', size=16))
    (tmp_path/'junk.pt').write_bytes(b'not a checkpoint')
    with pytest.raises(ValueError, match='junk.pt is not a readable checkpoint'): load_checkpoint(tmp_path/'junk.pt', {})
    with pytest.raises(FileNotFoundError, match='checkpoint not found'): load_checkpoint(tmp_path/'none.pt', {})

def test_saved_encoder_gives_the_same_features(tiny_df, tmp_path):
    "save_encoder then load_encoder (weights_only=True): the same features as the encoder in memory, in eval mode."
    from medcl_nb.experiment import pretrain, save_encoder, load_encoder
    enc, _ = pretrain(tiny_df, method='simclr', epochs=1, bs=8, size=16, device='cpu', seed=0, progress=False)
    save_encoder(enc, tmp_path, 'simclr', 'resnet18', 16, seed=0)
    back = load_encoder(tmp_path)
    assert not back.training and json.loads((tmp_path/'encoders'/'simclr.json').read_text())['arch'] == 'resnet18'
    x = torch.rand(6, 1, 16, 16)
    with torch.no_grad(): a, b = enc.eval()(x), back(x)
    assert a.shape == b.shape and torch.equal(a, b)

def test_bad_encoder_files(tmp_path):
    from medcl_nb.experiment import load_encoder, save_encoder
    from medcl_nb.models import encoder
    with pytest.raises(FileNotFoundError, match='--encoder: file not found: none.pt'): load_encoder(tmp_path/'none.pt')
    torch.save([1, 2], tmp_path/'list.pt')
    with pytest.raises(ValueError, match='--encoder: list.pt is not a state dict'): load_encoder(tmp_path/'list.pt', arch='resnet18')
    (tmp_path/'text.pt').write_text('hello')
    with pytest.raises(ValueError, match='--encoder: text.pt is not a state dict of tensors'): load_encoder(tmp_path/'text.pt', arch='resnet18')
    torch.save(encoder('xresnet18', in_chans=1).state_dict(), tmp_path/'x18.pt')      # no .json beside it: --arch says resnet18
    with pytest.raises(ValueError, match="--encoder: x18.pt does not fit arch 'resnet18'.*missing keys"): load_encoder(tmp_path/'x18.pt', arch='resnet18')
    with pytest.raises(ValueError, match='pass its arch'): load_encoder(tmp_path/'x18.pt')
    save_encoder(encoder('resnet18', in_chans=1), tmp_path/'run', 'moco', 'resnet18', 16)
    with pytest.raises(ValueError, match="holds a resnet18 encoder .* not the resnet34"): load_encoder(tmp_path/'run', arch='resnet34')

def test_resume_without_a_checkpoint_exits_2(tmp_path, capsys, monkeypatch):
    from medcl_nb.experiment import medcl_experiment_cli
    monkeypatch.chdir(ROOT)
    with pytest.raises(SystemExit) as e: medcl_experiment_cli(['--resume', '--out', str(tmp_path/'empty')])
    assert e.value.code == 2 and "--resume: no checkpoint of ['moco'] in empty/checkpoints/" in capsys.readouterr().err
    (tmp_path/'other'/'checkpoints').mkdir(parents=True); (tmp_path/'other'/'checkpoints'/'simclr.pt').write_bytes(b'')
    with pytest.raises(SystemExit) as e: medcl_experiment_cli(['--resume', '--out', str(tmp_path/'other')])
    assert e.value.code == 2 and "(it holds ['simclr']: another method)" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e: medcl_experiment_cli(['--encoder', str(tmp_path/'none.pt'), '--out', str(tmp_path/'x')])
    assert e.value.code == 2 and '--encoder: file not found: none.pt' in capsys.readouterr().err

def test_killed_job_resumes_to_the_uninterrupted_encoder(tmp_path, capsys, monkeypatch):
    "A real medcl_experiment, SIGKILLed once its first checkpoint is written, then --resume: the saved encoder equals an uninterrupted run's; --encoder evaluates it."
    monkeypatch.chdir(ROOT)
    ref, cut = tmp_path/'ref', tmp_path/'cut'
    r = subprocess.run(_cli(*TINY, '--out', str(ref)), cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    log = (ref/'log.txt').read_text()
    assert 'moco epoch 2/2: train_loss' in log and 'ETA' in log and '\r' not in r.stdout     # no progress bars off a terminal
    p = subprocess.Popen(_cli(*TINY, '--out', str(cut)), cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt, t0 = cut/'checkpoints'/'moco.pt', time.time()
    while not ckpt.exists() and p.poll() is None and time.time() - t0 < 600: time.sleep(0.02)
    p.send_signal(signal.SIGKILL); p.wait()
    assert p.returncode == -signal.SIGKILL, 'the run ended before it could be killed'
    assert _state(ckpt)['epoch'] == 1 and not (cut/'encoders').exists()
    from medcl_nb.experiment import medcl_experiment_cli                       # in this process: no second interpreter start
    with pytest.raises(SystemExit) as e: medcl_experiment_cli([*TINY, '--size', '32', '--resume', '--out', str(cut)])
    assert e.value.code == 2 and 'size=16 there, 32 here' in capsys.readouterr().err
    r = subprocess.run(_cli(*TINY, '--resume', '--out', str(cut)), cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    _same(_state(ref/'encoders'/'moco.pt'), _state(cut/'encoders'/'moco.pt'))
    hist = lambda d: json.loads((d/'report.json').read_text())['pretraining']['history']
    assert hist(ref) == hist(cut)
    medcl_experiment_cli([*TINY, '--encoder', str(cut), '--out', str(tmp_path/'ev')])      # evaluate the saved encoder, no pretraining
    ev = json.loads((tmp_path/'ev'/'report.json').read_text())
    assert ev['encoders']['moco'].startswith('loaded from moco.pt (pretrained with moco, 2 epochs, seed 0)') and ev['pretraining']['history'] == []
    summary = lambda d: json.loads((d/'report.json').read_text())['linear_eval']['summary']
    assert summary(tmp_path/'ev') == summary(ref)

def test_cli_persistence_options_reach_run_experiment(monkeypatch):
    "The new options' defaults equal run_experiment's; progress bars only on a terminal (pytest's captured stdout is not one)."
    import inspect
    import medcl_nb.experiment as ex
    run_d = {k: v.default for k, v in inspect.signature(ex.run_experiment).parameters.items()}
    seen = []
    def fake(**kw): seen.append(kw); raise FileNotFoundError('stop here')
    monkeypatch.setattr(ex, 'run_experiment', fake)
    monkeypatch.chdir(ROOT)
    for argv in ([], ['--resume', '--checkpoint-minutes', '5', '--no-validate', '--encoder', 'x.pt']):
        with pytest.raises(SystemExit): ex.medcl_experiment_cli(argv)
    assert {k: seen[0][k] for k in ('encoder', 'resume', 'checkpoint_minutes', 'validate')} == \
           {k: run_d[k] for k in ('encoder', 'resume', 'checkpoint_minutes', 'validate')}
    assert (seen[1]['resume'], seen[1]['checkpoint_minutes'], seen[1]['validate'], seen[1]['encoder']) == (True, 5.0, False, 'x.pt')
    assert not sys.stdout.isatty() and seen[0]['progress'] is False

def test_igcl_pretraining_resumes_exactly(tiny_df, tmp_path):
    "IGCL through the main job's registry entry: interrupted after epoch 1 of 2, resumed from its checkpoint, the same weights and logit scale."
    from medcl_nb.experiment import PRETRAINERS, Checkpointing
    kw = dict(epochs=2, bs=8, size=16, device='cpu', seed=0, progress=False)
    ref = PRETRAINERS['igcl'](tiny_df, **kw)
    ck = lambda resume: Checkpointing(tmp_path, dict(method='igcl', size=16), minutes=30., resume=resume)
    cut = PRETRAINERS['igcl'](tiny_df, **kw, checkpoint=ck(False), cbs=[_stop_at(0)])
    assert _state(tmp_path/'igcl.pt')['epoch'] == 1 and len(cut.history) == 1
    res = PRETRAINERS['igcl'](tiny_df, **kw, checkpoint=ck(True))
    _same(ref.encoder.state_dict(), res.encoder.state_dict())
    assert [h['train_loss_mean'] for h in res.history] == [h['train_loss_mean'] for h in ref.history]
    assert [h['logit_scale'] for h in res.history] == [h['logit_scale'] for h in ref.history]
