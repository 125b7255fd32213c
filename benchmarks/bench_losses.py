"""Vectorized contrastive losses against the literal loops of nbs/04_losses.ipynb: forward + backward.

    python benchmarks/bench_losses.py                      # CPU, 1 thread
    python benchmarks/bench_losses.py --device cuda        # GPU

For each case it times the exported loss and its `reference_*` loop (imported from `medcl_nb.losses`:
the same loops the notebook shows and tests against, so there is one copy of each) in the same run,
prints the median times and their ratio, and the peak memory of one forward + backward next to the
size of the loss's logits matrix. Only the ratios mean something across machines.

Peak memory: on CUDA, `torch.cuda.max_memory_allocated` above what the inputs hold; on CPU, the
growth of the process's peak resident set (VmHWM, reset through /proc/self/clear_refs) during one
forward + backward in a fresh process, so allocator caches from earlier cases do not hide it.
"""
import argparse, multiprocessing as mp, statistics, sys, time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # run from a checkout without installing

from medcl_nb.losses import (info_nce, local_uniformity, nt_xent, reference_info_nce,
                             reference_local_uniformity, reference_nt_xent)

D = 128


def ntxent_case(n):
    "NT-Xent over 2n views of width D."
    def inputs(device):
        g = torch.Generator(device='cpu').manual_seed(0)
        return [torch.randn(n, D, generator=g).to(device).requires_grad_() for _ in range(2)]
    return dict(name=f"NTXent N={n} D={D}", inputs=inputs, logits_bytes=(2 * n) ** 2 * 4,
                vectorized=lambda z1, z2: nt_xent(z1, z2, 0.1), reference=lambda z1, z2: reference_nt_xent(z1, z2, 0.1))


def moco_case(n=256, k=65536):
    "MoCo InfoNCE: queries with grad; keys and queue without (as MoCo computes them)."
    def inputs(device):
        g = torch.Generator(device='cpu').manual_seed(0)
        q = torch.randn(n, D, generator=g).to(device).requires_grad_()
        keys = torch.nn.functional.normalize(torch.randn(n, D, generator=g), dim=1).to(device)
        queue = torch.nn.functional.normalize(torch.randn(k, D, generator=g), dim=1).to(device)
        return [q, keys, queue]
    return dict(name=f"MoCo InfoNCE N={n} K={k} D={D}", inputs=inputs, logits_bytes=n * (k + 1) * 4,
                vectorized=lambda q, keys, queue: info_nce(q, keys, 0.2, queue),
                reference=lambda q, keys, queue: reference_info_nce(q, keys, 0.2, queue))


def local_case(b=32, units=49):
    "LocalUniformity over b samples of a 7x7 grid of local units, a few padded in half the samples."
    def inputs(device):
        g = torch.Generator(device='cpu').manual_seed(0)
        z = torch.randn(b, units, D, generator=g).to(device).requires_grad_()
        n_valid = torch.where(torch.arange(b) % 2 == 0, units, units - 9)
        mask = (torch.arange(units)[None] < n_valid[:, None]).to(device)
        return [z, mask]
    return dict(name=f"LocalUniformity B={b} L={units} D={D}", inputs=inputs, logits_bytes=b * units * units * 4,
                vectorized=lambda z, mask: local_uniformity(z, mask),
                reference=lambda z, mask: reference_local_uniformity(z, mask))


CASES = [ntxent_case(256), ntxent_case(1024), moco_case(), local_case()]


def sync(device):
    if device.startswith('cuda'): torch.cuda.synchronize()


def forward_backward(fn, xs):
    for x in xs:
        x.grad = None
    loss = fn(*xs)
    loss.backward()
    return loss


def median_seconds(fn, xs, device, repeats, warmup=1):
    for _ in range(warmup): forward_backward(fn, xs)
    times = []
    for _ in range(repeats):
        sync(device); start = time.perf_counter()
        forward_backward(fn, xs)
        sync(device); times.append(time.perf_counter() - start)
    return statistics.median(times)


def _rss_kb(field):
    with open('/proc/self/status') as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ':'))


def _cpu_peak_child(case_index, impl, threads, out):
    torch.set_num_threads(threads)
    case = CASES[case_index]
    xs = case['inputs']('cpu')
    # run the same code on 4 rows first: lazy one-time allocations (autograd engine, kernels) fall
    # outside the measurement, and 4 rows free too little for the allocator to reuse later
    forward_backward(case[impl], [x[:4].detach().requires_grad_(x.requires_grad) for x in xs])
    before = _rss_kb('VmRSS')
    with open('/proc/self/clear_refs', 'w') as f: f.write('5')    # reset the peak to the current RSS
    forward_backward(case[impl], xs)
    out.put((_rss_kb('VmHWM') - before) * 1024)


def peak_bytes(case_index, impl, device, threads):
    "Peak extra memory of one forward + backward (bytes), or None when it cannot be measured."
    case = CASES[case_index]
    if device.startswith('cuda'):
        xs = case['inputs'](device)
        forward_backward(case[impl], xs)
        torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        forward_backward(case[impl], xs)
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base
    try:
        open('/proc/self/clear_refs', 'w').close()
    except OSError:
        return None
    ctx = mp.get_context('spawn')
    out = ctx.Queue()
    p = ctx.Process(target=_cpu_peak_child, args=(case_index, impl, threads, out))
    p.start(); p.join()
    return out.get() if p.exitcode == 0 else None


def mib(n): return 'n/a' if n is None else f"{n / 2**20:.1f}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--threads', type=int, default=1, help='CPU threads (1 gives stabler numbers on a shared machine)')
    parser.add_argument('--repeats', type=int, default=5, help='timed runs of the vectorized loss (the loop runs 2)')
    parser.add_argument('--no-memory', action='store_true', help='skip the peak-memory measurement')
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    where = torch.cuda.get_device_name() if args.device.startswith('cuda') else f"CPU, {args.threads} thread(s)"
    print(f"torch {torch.__version__}, {where}; forward + backward, median seconds; memory in MiB")
    header = f"{'case':<34} {'vectorized':>11} {'loop':>9} {'loop/vec':>9} {'logits':>7} {'peak vec':>9} {'peak loop':>9}"
    print(header); print('-' * len(header))
    for i, case in enumerate(CASES):
        xs = case['inputs'](args.device)
        vec = median_seconds(case['vectorized'], xs, args.device, args.repeats)
        ref = median_seconds(case['reference'], xs, args.device, repeats=2, warmup=0)
        torch.testing.assert_close(case['vectorized'](*xs), case['reference'](*xs), rtol=1e-4, atol=1e-4)
        peaks = [None, None] if args.no_memory else [peak_bytes(i, impl, args.device, args.threads)
                                                      for impl in ('vectorized', 'reference')]
        print(f"{case['name']:<34} {vec:>11.4f} {ref:>9.3f} {ref / vec:>8.0f}x {mib(case['logits_bytes']):>7}"
              f" {mib(peaks[0]):>9} {mib(peaks[1]):>9}", flush=True)


if __name__ == '__main__':
    sys.exit(main())
