"""Throughput of MoCo pretraining through the distributed path (DDP via fastai's `distrib_ctx` + Accelerate).

Two measurements, each a ratio within one run:

1. CPU scaling (default): the same global batch and images through `moco_learner` in 1 process with 2 threads vs
   2 processes of 1 thread each (gloo, torch.multiprocessing), interleaved repeats. Images per second of the training
   phase of one epoch, after a warm-up epoch.

       python benchmarks/bench_distributed.py [--steps 6] [--repeats 2] [--bs 32] [--size 64] [--clock wall|cpu]

   `--clock cpu` (for a machine shared with other jobs, where wall time is mostly waiting for a core): 1 process with
   1 thread vs 2 processes with 1 thread each, images per CPU-second summed over the processes. The ratio is then the
   parallel efficiency (1.0: the 2 processes do no more work than one; their wall-clock speed-up on 2 idle cores would
   be about twice it).

2. The overhead of the distributed code path on one device (`--world1`, under torchrun with one process): the same
   learner fitted plainly vs inside `learn.distrib_ctx()` (DDP with world size 1, DistributedDL, the gathers, the
   checks), interleaved repeats. On a GPU (tools/device_check.sh):

       torchrun --nproc_per_node 1 benchmarks/bench_distributed.py --world1 --device cuda

   (`--device cpu` runs the same path on the CPU, to check the script.)
"""
import argparse, os, socket, statistics, sys, tempfile, time, warnings
from contextlib import nullcontext
from datetime import timedelta
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import medcl_nb  # noqa: F401  (first: its warning filter)
import torch, torch.distributed as dist, torch.multiprocessing as mp
from fastai.callback.core import Callback
from fastai.data.core import DataLoaders
from fastai.data.load import DataLoader
from fastai.torch_core import set_seed
from medcl_nb.learner import moco_learner
from medcl_nb.augment import medical_aug

def images(n, size, seed=0):
    return torch.rand(n, 1, size, size, generator=torch.Generator().manual_seed(seed))

def sync(device):
    if torch.device(device).type == 'cuda': torch.cuda.synchronize()

class TrainTimer(Callback):
    "Time of the training phase only (no validation): wall (perf_counter) or this process's CPU time (process_time)."
    order = 100
    def __init__(self, device, clock=time.perf_counter): self.device, self.clock = device, clock
    def before_train(self): sync(self.device); self.t0 = self.clock()
    def after_train(self): sync(self.device); self.seconds = self.clock() - self.t0

def learner(x, bs, device, arch, clock=time.perf_counter):
    "moco_learner on the images `x` at per-process batch size `bs`."
    set_seed(0)
    items = [(xi,) for xi in x]
    dls = DataLoaders(DataLoader(items, bs=bs, shuffle=True, drop_last=True, device=device),
                      DataLoader(items[:bs], bs=bs, device=device), device=device)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        return moco_learner(dls, arch, queue_size=4096, momentum=0.99, temperature=0.2, aug=medical_aug(),
                            path=tempfile.mkdtemp(), cbs=[TrainTimer(device, clock)])

def timed_fit(learn, distributed, cpu):
    "Seconds of one training epoch, after a warm-up epoch; inside `distrib_ctx` if `distributed`."
    ctx = (lambda: learn.distrib_ctx(sync_bn=False, cpu=cpu)) if distributed else nullcontext
    with learn.no_bar(), learn.no_logging():
        with ctx(): learn.fit(1, 1e-3)                                   # warm-up
        with ctx(): learn.fit(1, 1e-3)
    return learn.train_timer.seconds

def _rank(rank, world, port, x, bs, arch, cpu_clock, out):
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_WORLD_SIZE=str(world), OMP_NUM_THREADS='1')
    torch.set_num_threads(1)
    warnings.simplefilter('ignore')
    dist.init_process_group('gloo', rank=rank, world_size=world, timeout=timedelta(seconds=600))
    try:
        clock = time.process_time if cpu_clock else time.perf_counter
        seconds = timed_fit(learner(x, bs // world, 'cpu', arch, clock), distributed=True, cpu=True)
        Path(f"{out}.{rank}").write_text(str(seconds))
    finally: dist.destroy_process_group()

def two_processes(x, bs, arch, cpu_clock):
    "Seconds of the training epoch: rank 0's wall time, or the CPU time summed over both ranks."
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]
    out = Path(tempfile.mkdtemp())/'seconds'
    mp.spawn(_rank, args=(2, port, x, bs, arch, cpu_clock, str(out)), nprocs=2, join=True)
    seconds = [float(Path(f"{out}.{r}").read_text()) for r in range(2)]
    return sum(seconds) if cpu_clock else seconds[0]

def report(title, res, reference, unit='images/s'):
    print(title)
    med = {k: statistics.median(v) for k, v in res.items()}
    for k, v in res.items(): print(f"  {k:34s} {med[k]:8.1f} {unit}   (runs: {', '.join(f'{r:.1f}' for r in v)})")
    for k in res:
        if k == reference: continue
        ratios = [a / b for a, b in zip(res[k], res[reference])]
        print(f"  ratio {k} / {reference}: {med[k] / med[reference]:.3f} (medians); per repeat "
              f"{', '.join(f'{r:.3f}' for r in ratios)}")

def main():
    p = argparse.ArgumentParser()
    p.add_argument('--steps', type=int, default=None); p.add_argument('--repeats', type=int, default=2)
    p.add_argument('--bs', type=int, default=None); p.add_argument('--size', type=int, default=None)
    p.add_argument('--arch', default=None); p.add_argument('--device', default='cpu')
    p.add_argument('--world1', action='store_true', help="one process under torchrun: distrib_ctx vs plain")
    p.add_argument('--clock', choices=('wall', 'cpu'), default='wall', help="cpu: images per CPU-second (shared machines)")
    a = p.parse_args()
    cuda = torch.device(a.device).type == 'cuda'
    arch, size, bs, steps = (a.arch or ('resnet50' if cuda else 'resnet18'), a.size or (224 if cuda else 64),
                             a.bs or (64 if cuda else 32), a.steps or (20 if cuda else 6))
    x = images(steps * bs, size)
    if a.world1:
        if os.environ.get('WORLD_SIZE') != '1':
            raise SystemExit("--world1 runs under torchrun with one process: torchrun --nproc_per_node 1 "
                             "benchmarks/bench_distributed.py --world1 --device cuda")
        device = torch.device(a.device)
        if cuda: torch.cuda.set_device(device)
        res = {'plain learner': [], 'distrib_ctx (DDP, world size 1)': []}
        for _ in range(a.repeats):
            for k in res:
                seconds = timed_fit(learner(x, bs, device, arch), distributed=k != 'plain learner', cpu=not cuda)
                res[k].append(steps * bs / seconds)
        name = torch.cuda.get_device_name(device) if cuda else 'cpu'
        report(f"MoCo through the distributed path on one device: {arch} {size}x{size}, batch {bs}, {steps} steps x "
               f"{a.repeats} repeats, {name}", res, 'plain learner')
        return
    cpu_clock = a.clock == 'cpu'
    torch.set_num_threads(1 if cpu_clock else 2)
    one = f"1 process, {1 if cpu_clock else 2} thread{'' if cpu_clock else 's'}"
    res = {one: [], '2 processes (gloo), 1 thread each': []}
    clock = time.process_time if cpu_clock else time.perf_counter
    for _ in range(a.repeats):                               # interleaved, so drifting load hits both alike
        res[one].append(steps * bs / timed_fit(learner(x, bs, 'cpu', arch, clock), False, True))
        res['2 processes (gloo), 1 thread each'].append(steps * bs / two_processes(x, bs, arch, cpu_clock))
    report(f"MoCo, {arch} {size}x{size}, global batch {bs} ({bs // 2} per process with 2), {steps} steps x "
           f"{a.repeats} repeats, cpu, {a.clock} clock" + (" (images per CPU-second, summed over processes)"
           if cpu_clock else ""), res, one, 'images per CPU-second' if cpu_clock else 'images/s')

if __name__ == '__main__': main()
