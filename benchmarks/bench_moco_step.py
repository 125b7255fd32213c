"""MoCo training step: fastai Learner (moco_learner) vs a plain PyTorch loop doing the same work.

Same model (MoCoModel: resnet18 query+head, momentum key encoder, queue), same batches (64x64, batch 32),
same per-step work: two views with `medical_aug` on the device, momentum update, forward, InfoNCE with the
queue, backward, Adam step, enqueue. Prints images/s of each and the ratio fastai / plain (same run).

    python benchmarks/bench_moco_step.py [--steps 6] [--repeats 2] [--threads 2] [--size 64] [--bs 32] [--device cpu]
"""
import argparse, statistics, sys, time, tempfile, warnings
from functools import partial
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import torch
from fastai.data.core import DataLoaders
from fastai.data.load import DataLoader
from fastai.callback.core import Callback
from fastai.callback.training import ShortEpochCallback
from fastai.optimizer import OptimWrapper
from fastai.torch_core import set_seed
from medcl_nb.learner import moco_learner
from medcl_nb.models import momentum_update_
from medcl_nb.augment import medical_aug

def images(n, size, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, size, size, generator=g)

def sync(device):
    if device.type == 'cuda': torch.cuda.synchronize()

class TrainTimer(Callback):
    "Wall time of the training phase only (no validation)."
    order = 100
    def before_train(self): sync(self.dls.device or torch.device('cpu')); self.t0 = time.perf_counter()
    def after_train(self): sync(self.dls.device or torch.device('cpu')); self.seconds = time.perf_counter() - self.t0

def fastai_run(x, bs, device, opt):
    set_seed(0)
    items = [(xi,) for xi in x]
    dls = DataLoaders(DataLoader(items, bs=bs, shuffle=True, drop_last=True, device=device),
                      DataLoader(items[:bs], bs=bs, device=device), device=device)
    kw = dict(opt_func=partial(OptimWrapper, opt=torch.optim.Adam)) if opt == 'torch' else {}
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        learn = moco_learner(dls, 'resnet18', queue_size=4096, momentum=0.999, temperature=0.2, aug=medical_aug(),
                             amp=False, path=tempfile.mkdtemp(), cbs=[TrainTimer()], **kw)
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3, cbs=ShortEpochCallback(pct=1e-6, short_valid=True))  # warm-up: 1 batch
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3)
    return len(dls.train) * bs / learn.train_timer.seconds

def plain_run(x, bs, device):
    "The same MoCo step without fastai: model and loss from medcl_nb, torch DataLoader and Adam."
    set_seed(0)
    items = [(xi,) for xi in x]
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        model = moco_learner(DataLoaders(DataLoader(items, bs=bs), DataLoader(items[:bs], bs=bs)), 'resnet18',
                             queue_size=4096, amp=False).model.to(device)
    loss_fn = __import__('medcl_nb.losses', fromlist=['InfoNCE']).InfoNCE(0.2)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
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
    sync(device); t0 = time.perf_counter(); epoch(); sync(device)
    return len(dl) * bs / (time.perf_counter() - t0)

def main():
    p = argparse.ArgumentParser()
    p.add_argument('--steps', type=int, default=6); p.add_argument('--repeats', type=int, default=2)
    p.add_argument('--threads', type=int, default=2); p.add_argument('--size', type=int, default=64)
    p.add_argument('--bs', type=int, default=32); p.add_argument('--device', default='cpu')
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    x = images(a.steps * a.bs, a.size)
    res = {'plain': [], 'fastai (torch Adam)': [], 'fastai (fastai Adam)': []}
    for _ in range(a.repeats):                                        # interleaved, so drifting load hits all alike
        res['plain'].append(plain_run(x, a.bs, device))
        res['fastai (torch Adam)'].append(fastai_run(x, a.bs, device, 'torch'))
        res['fastai (fastai Adam)'].append(fastai_run(x, a.bs, device, 'fastai'))
    med = {k: statistics.median(v) for k, v in res.items()}
    print(f"MoCo step, resnet18, {a.size}x{a.size}, batch {a.bs}, {a.steps} steps x {a.repeats} repeats, "
          f"{a.threads} threads, {a.device}")
    for k, v in med.items(): print(f"  {k:22s} {v:8.1f} images/s   (runs: {', '.join(f'{r:.1f}' for r in res[k])})")
    for k in ('fastai (torch Adam)', 'fastai (fastai Adam)'):
        print(f"  ratio {k} / plain: {med[k] / med['plain']:.3f}")

if __name__ == '__main__': main()
