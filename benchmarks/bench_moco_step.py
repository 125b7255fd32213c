"""MoCo training step: fastai Learner (moco_learner) vs a plain PyTorch loop doing the same work.

Same model (MoCoModel: resnet18 query+head, momentum key encoder, queue), same batches (64x64, batch 32),
same per-step work: two views with `medical_aug` on the device, momentum update, forward, InfoNCE with the
queue, backward, Adam step, enqueue. Prints images/s of each and the ratio fastai / plain (same run).

The plain loop steps with `torch.optim.AdamW(fused=True)` and fastai's Adam hyperparameters (betas 0.9/0.99, eps 1e-5,
weight decay 0.01): the fastest torch optimizer doing the work the learners' default `TorchAdam` does. The Learner runs
twice: with its default `opt_func` (`TorchAdam`, torch's fused Adam kernel) and with fastai's own `Adam` (a Python loop
over the parameter tensors), the default before `TorchAdam`.

    python benchmarks/bench_moco_step.py [--steps 6] [--repeats 2] [--threads 2] [--size 64] [--bs 32] [--device cpu]
                                         [--clock wall|cpu]

`--clock cpu` divides by the process's CPU time (time.process_time) instead of the wall time: on a machine shared with
other jobs the wall time is mostly waiting for a core, while the CPU time is the work each version does. Use it with
`--threads 1` (with more threads, spinning OpenMP threads add their waiting to the CPU time). All the work runs in the
main process (both DataLoaders have num_workers=0), so the process's CPU time is all of it.
"""
import argparse, statistics, sys, time, tempfile, warnings
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import medcl_nb  # noqa: F401  (first: its warning filter silences fastai's torch.jit.script FutureWarning)
import torch
from fastai.data.core import DataLoaders
from fastai.data.load import DataLoader
from fastai.callback.core import Callback
from fastai.callback.training import ShortEpochCallback
from fastai.optimizer import Adam
from fastai.torch_core import set_seed
from medcl_nb.learner import moco_learner
from medcl_nb.models import momentum_update_
from medcl_nb.augment import medical_aug

def images(n, size, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, size, size, generator=g)

def sync(device):
    if device.type == 'cuda': torch.cuda.synchronize()

clock = time.perf_counter                                            # main() sets time.process_time for --clock cpu

class TrainTimer(Callback):
    "Time of the training phase only (no validation)."
    order = 100
    def before_train(self): sync(self.dls.device or torch.device('cpu')); self.t0 = clock()
    def after_train(self): sync(self.dls.device or torch.device('cpu')); self.seconds = clock() - self.t0

def fastai_run(x, bs, device, opt):
    set_seed(0)
    items = [(xi,) for xi in x]
    dls = DataLoaders(DataLoader(items, bs=bs, shuffle=True, drop_last=True, device=device),
                      DataLoader(items[:bs], bs=bs, device=device), device=device)
    kw = {} if opt == 'default' else dict(opt_func=Adam)              # default: TorchAdam
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        learn = moco_learner(dls, 'resnet18', queue_size=4096, momentum=0.999, temperature=0.2, aug=medical_aug(),
                             amp=False, path=tempfile.mkdtemp(), cbs=[TrainTimer()], **kw)
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3, cbs=ShortEpochCallback(pct=1e-6, short_valid=True))  # warm-up: 1 batch
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3)
    return len(dls.train) * bs / learn.train_timer.seconds

def plain_run(x, bs, device):
    "The same MoCo step without fastai: model and loss from medcl_nb, torch DataLoader, torch's fused AdamW."
    set_seed(0)
    items = [(xi,) for xi in x]
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        model = moco_learner(DataLoaders(DataLoader(items, bs=bs), DataLoader(items[:bs], bs=bs)), 'resnet18',
                             queue_size=4096, amp=False).model.to(device)
    loss_fn = __import__('medcl_nb.losses', fromlist=['InfoNCE']).InfoNCE(0.2)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3, betas=(0.9, 0.99), eps=1e-5,
                            weight_decay=0.01, fused=True)
    aug = medical_aug()
    dl = torch.utils.data.DataLoader(x, batch_size=bs, shuffle=True, drop_last=True)
    def epoch(warmup=False):
        model.train()
        for i, xb in enumerate(dl):
            if warmup and i: break
            xb = xb.to(device)
            v1, v2 = aug(xb), aug(xb)
            momentum_update_(model.key, model.query, 0.999)
            q, k, queue = model(v1, v2)
            loss = loss_fn(q, k, queue=queue)
            loss.backward(); opt.step(); opt.zero_grad()
            model.queue.enqueue_(k)
    epoch(warmup=True)                                                # warm-up: 1 batch
    sync(device); t0 = clock(); epoch(); sync(device)
    return len(dl) * bs / (clock() - t0)

def main():
    p = argparse.ArgumentParser()
    p.add_argument('--steps', type=int, default=6); p.add_argument('--repeats', type=int, default=2)
    p.add_argument('--threads', type=int, default=2); p.add_argument('--size', type=int, default=64)
    p.add_argument('--bs', type=int, default=32); p.add_argument('--device', default='cpu')
    p.add_argument('--clock', choices=('wall', 'cpu'), default='wall', help="cpu: images per CPU-second of this process")
    a = p.parse_args()
    global clock
    if a.clock == 'cpu':
        if a.device != 'cpu': raise SystemExit("--clock cpu measures CPU work; on a GPU use the wall clock")
        clock = time.process_time
    torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    x = images(a.steps * a.bs, a.size)
    runs = {'plain': lambda: plain_run(x, a.bs, device),
            'fastai (TorchAdam)': lambda: fastai_run(x, a.bs, device, 'default'),
            'fastai (fastai Adam)': lambda: fastai_run(x, a.bs, device, 'fastai')}
    res = {k: [] for k in runs}
    for _ in range(a.repeats):                                        # interleaved, so drifting load hits all alike
        for k, run in runs.items(): res[k].append(run())
    med = {k: statistics.median(v) for k, v in res.items()}
    print(f"MoCo step, resnet18, {a.size}x{a.size}, batch {a.bs}, {a.steps} steps x {a.repeats} repeats, "
          f"{a.threads} threads, {a.device}, {a.clock} clock")
    unit = 'images/s' if a.clock == 'wall' else 'images per CPU-second'
    for k, v in med.items(): print(f"  {k:22s} {v:8.1f} {unit}   (runs: {', '.join(f'{r:.1f}' for r in res[k])})")
    for k in ('fastai (TorchAdam)', 'fastai (fastai Adam)'):
        ratios = [f / p for f, p in zip(res[k], res['plain'])]          # per repeat: the plain run next to it
        print(f"  ratio {k} / plain: {med[k] / med['plain']:.3f} (medians); per repeat "
              f"{', '.join(f'{r:.3f}' for r in ratios)}; spread {min(ratios):.3f}-{max(ratios):.3f}")

if __name__ == '__main__': main()
