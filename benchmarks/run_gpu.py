"""GPU measurements for the learners, as one prepared script (a few minutes on one GPU).

1. AMP vs fp32: the MoCo loss of the same batch and weights under bf16 autocast vs float32 (relative difference).
2. MoCo training step, resnet50 at 224x224: fp32 vs bf16 autocast + channels_last, plain PyTorch loop and the
   fastai Learner (moco_learner with its default optimizer, TorchAdam: torch's fused Adam with fastai's
   hyperparameters); the plain loop steps with torch.optim.AdamW(fused=True) and the same hyperparameters (betas
   0.9/0.99, eps 1e-5, weight decay 0.01): images/s and peak GPU memory; ratios within this run.
   `--fastai-adam` adds the Learner with fastai's own Adam (the default before TorchAdam), for comparison.

    python benchmarks/run_gpu.py [--bs 64] [--steps 20] [--fastai-adam] [--smoke]

Without a GPU it prints a message and exits 0. `--smoke` runs every code path on the CPU at toy sizes
(resnet18, 32 px) to check the script itself; its numbers mean nothing.
"""
import argparse, sys, time, tempfile, warnings
from contextlib import nullcontext
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import torch

def main():
    p = argparse.ArgumentParser()
    p.add_argument('--bs', type=int, default=64); p.add_argument('--steps', type=int, default=20)
    p.add_argument('--smoke', action='store_true')
    p.add_argument('--fastai-adam', action='store_true', help="also time the Learner with fastai's Adam")
    a = p.parse_args()
    if not torch.cuda.is_available() and not a.smoke:
        print("run_gpu.py: no CUDA device found; nothing to measure (use --smoke to check the script on the CPU).")
        return 0
    warnings.simplefilter('ignore')
    from fastai.data.core import DataLoaders
    from fastai.data.load import DataLoader
    from fastai.callback.core import Callback
    from fastai.callback.fp16 import MixedPrecision
    from fastai.callback.channelslast import ChannelsLast
    from fastai.torch_core import set_seed
    from fastai.optimizer import Adam
    from medcl_nb.learner import moco_learner
    from medcl_nb.models import momentum_update_
    from medcl_nb.augment import medical_aug
    from medcl_nb.losses import InfoNCE

    cuda = torch.cuda.is_available() and not a.smoke
    device = torch.device('cuda' if cuda else 'cpu')
    arch, size, bs, steps = ('resnet50', 224, a.bs, a.steps) if cuda else ('resnet18', 32, 8, 3)
    bf16 = cuda and torch.cuda.is_bf16_supported()
    amp_dtype = torch.bfloat16 if (bf16 or not cuda) else torch.float16
    def sync():
        if cuda: torch.cuda.synchronize()
    def reset_peak():
        if cuda: torch.cuda.empty_cache(); torch.cuda.reset_peak_memory_stats()
    def peak_gib(): return torch.cuda.max_memory_allocated() / 2**30 if cuda else float('nan')
    name = torch.cuda.get_device_name() if cuda else 'CPU (smoke test)'
    print(f"device: {name}; torch {torch.__version__}; {arch} {size}x{size}, batch {bs}, {steps} timed steps; "
          f"AMP dtype {amp_dtype}")

    x_cpu = torch.rand(bs * (steps + 3), 1, size, size)
    items = [(xi,) for xi in x_cpu]
    def make_learner(amp, channels_last, n_items=None, **kwargs):
        set_seed(0)
        its = items[:n_items] if n_items else items
        dls = DataLoaders(DataLoader(its, bs=bs, shuffle=True, drop_last=True, device=device),
                          DataLoader(its[:bs], bs=bs, device=device), device=device)
        cbs = ([MixedPrecision(amp_mode='bf16' if amp_dtype == torch.bfloat16 else 'fp16')] if amp and cuda else []) \
              + ([ChannelsLast()] if channels_last else [])
        return moco_learner(dls, arch, queue_size=16384, momentum=0.999, temperature=0.2, aug=medical_aug(),
                            amp=False, path=tempfile.mkdtemp(), cbs=cbs, **kwargs)

    # 1. AMP vs fp32 loss on the same batch and weights
    learn = make_learner(False, False, n_items=bs * 2)
    model = learn.model.to(device).train()
    xb = x_cpu[:bs].to(device); v1, v2 = medical_aug()(xb), medical_aug()(xb)
    torch.manual_seed(1)
    with torch.no_grad():
        l32 = learn.loss_func(model(v1, v2)).item()
        torch.manual_seed(1)
        with torch.autocast(device.type, dtype=amp_dtype): l16 = learn.loss_func(model(v1, v2)).item()
    print(f"1. MoCo loss fp32 {l32:.5f}  {str(amp_dtype).split('.')[-1]} autocast {l16:.5f}  "
          f"relative difference {abs(l16 - l32) / abs(l32):.2e}")
    del learn, model

    # 2a. plain PyTorch loop
    def plain(amp, channels_last):
        learn = make_learner(False, False)
        model = learn.model.to(device)
        if channels_last: model = model.to(memory_format=torch.channels_last)
        loss_fn, aug = InfoNCE(0.2), medical_aug()
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4, betas=(0.9, 0.99), eps=1e-5,
                                weight_decay=0.01, fused=True)        # the work TorchAdam does, without fastai
        scaler = torch.amp.GradScaler('cuda', enabled=amp and cuda and amp_dtype == torch.float16)
        ctx = (lambda: torch.autocast(device.type, dtype=amp_dtype)) if amp else nullcontext
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        def step(xb):
            v1, v2 = aug(xb).contiguous(memory_format=fmt), aug(xb).contiguous(memory_format=fmt)
            momentum_update_(model.key, model.query, 0.999)
            with ctx():
                q, k, queue = model(v1, v2)
                loss = loss_fn(q, k, queue=queue)
            scaler.scale(loss).backward(); scaler.step(opt); scaler.update(); opt.zero_grad(set_to_none=True)
            model.queue.enqueue_(k)
        model.train()
        batches = [x_cpu[i*bs:(i+1)*bs] for i in range(steps + 3)]
        for xb in batches[:3]: step(xb.to(device))                    # warm-up (cudnn autotune, allocator)
        reset_peak(); sync(); t = time.perf_counter()
        for xb in batches[3:]: step(xb.to(device))
        sync()
        return steps * bs / (time.perf_counter() - t), peak_gib()

    # 2b. the fastai Learner, timed over the training phase of one epoch after a warm-up epoch
    class TrainTimer(Callback):
        order = 100
        def before_train(self): reset_peak(); sync(); self.t = time.perf_counter()
        def after_train(self): sync(); self.s = time.perf_counter() - self.t; self.peak = peak_gib()
    def with_fastai(amp, channels_last, **kwargs):
        learn = make_learner(amp, channels_last, n_items=bs * 3, **kwargs)
        with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-4)   # warm-up
        learn = make_learner(amp, channels_last, **kwargs)
        learn.add_cb(TrainTimer())
        with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-4)
        return len(learn.dls.train) * bs / learn.train_timer.s, learn.train_timer.peak

    rows = []
    runs = [('plain', plain), ('fastai', with_fastai)]
    if a.fastai_adam: runs.append(('fastai (fastai Adam)', lambda amp, cl: with_fastai(amp, cl, opt_func=Adam)))
    for label, fn in runs:
        for amp, cl in ((False, False), (True, True)):
            ips, mem = fn(amp, cl)
            rows.append((label, 'fp32' if not amp else f"{str(amp_dtype).split('.')[-1]}+channels_last", ips, mem))
            print(f"2. {label:20s} {rows[-1][1]:22s} {ips:9.1f} images/s   peak memory {mem:6.2f} GiB", flush=True)
    get = {(r[0], r[1]): r for r in rows}
    fast = rows[1][1]
    for label in [r[0] for r in runs]:
        print(f"   {label}: {fast} / fp32 speed-up {get[(label, fast)][2] / get[(label, 'fp32')][2]:.2f}x, "
              f"memory ratio {get[(label, fast)][3] / get[(label, 'fp32')][3]:.2f}")
    for label in [r[0] for r in runs[1:]]:
        for prec in ('fp32', fast):
            print(f"   {label} / plain images/s at {prec}: {get[(label, prec)][2] / get[('plain', prec)][2]:.3f}")
    return 0

if __name__ == '__main__': sys.exit(main())
