"""Memory and speed of the memory-mapped image cache (medcl_nb.data.cache) against the in-RAM preload.

Generates N small PNGs (default 20,000 of 64x64, in a temp folder, reused by later runs), then in fresh subprocesses:
  baseline  imports torch and medcl_nb only (the RSS every job pays);
  preload   image_store(cache='ram'): every image decoded into one uint8 tensor in RAM, then one pass over it in batches;
  build     image_store(cache=DIR) the first time: decode into the .npy memory map;
  cache     image_store(cache=DIR) again (reused, nothing decoded), then one pass over it in shuffled batches through the
            two-view contrastive loader (contrastive_dls(images=store), medical_aug) - what pretraining reads.
Each prints its peak RSS (getrusage ru_maxrss: includes the file pages a memory map touched, which the kernel can drop
under pressure) and its anonymous RSS at the end (/proc/self/status RssAnon: the memory the process itself owns).
Then the ResNet18 (1 channel) forward+backward step on both views at that size, against the loader's images/s.

    PYTHONPATH=. python benchmarks/bench_cache.py [--n 20000] [--size 64] [--bs 64] [--root /tmp/medcl_bench_cache]
"""
import argparse, json, os, resource, subprocess, sys, tempfile, time
from pathlib import Path

def rss_anon_mb():
    for line in Path('/proc/self/status').read_text().splitlines():
        if line.startswith('RssAnon:'): return int(line.split()[1]) / 1024
    return float('nan')

def child(mode, root, size, bs, cache_dir):
    "One measurement in this (fresh) process; prints one JSON line."
    import numpy as np, pandas as pd, torch
    torch.set_num_threads(1)
    from medcl_nb.data.cache import image_store
    df = pd.DataFrame({'path': sorted(str(p) for p in Path(root).glob('*.png'))})
    out = dict(mode=mode)
    if mode != 'baseline':
        t = time.perf_counter()
        store, note = image_store(df, size, cache='ram' if mode == 'preload' else cache_dir)
        out.update(store_s=time.perf_counter() - t, note=note)
        if mode in ('preload', 'cache'):
            from medcl_nb.data.blocks import contrastive_dls
            from medcl_nb.augment import medical_aug
            df = df.assign(patient_id=[f'p{i}' for i in range(len(df))])
            half = len(df) // 2                       # train and valid halves: the loader reads the train half once
            dls = contrastive_dls(df, size=size, bs=bs, aug=medical_aug(), splits=(df.iloc[:half], df.iloc[half:]),
                                  device='cpu', two_views=True, images=store)
            t, n = time.perf_counter(), 0
            for v1, v2 in dls.train: n += len(v1)
            out.update(loader_ips=n / (time.perf_counter() - t))
    out.update(maxrss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, rss_anon_mb=rss_anon_mb())
    print(json.dumps(out))

def model_step_ips(size, bs, steps=3):
    import torch
    from medcl_nb.models import encoder
    torch.set_num_threads(1)
    enc = encoder('resnet18', in_chans=1)
    opt = torch.optim.SGD(enc.parameters(), lr=0.01)
    x = torch.rand(2 * bs, 1, size, size)
    enc(x).sum().backward()                            # warm-up
    t = time.perf_counter()
    for _ in range(steps):
        opt.zero_grad(); enc(x).sum().backward(); opt.step()
    return bs * steps / (time.perf_counter() - t)

def make_pngs(root, n, size):
    import numpy as np
    from PIL import Image
    root.mkdir(parents=True, exist_ok=True)
    have = len(list(root.glob('*.png')))
    if have >= n: return 0.
    t = time.perf_counter()
    y, x = np.mgrid[:size, :size]
    for i in range(have, n):
        Image.fromarray(((x * 3 + y * 5 + i * 7) % 256).astype(np.uint8)).save(root/f'{i:06d}.png')
    return time.perf_counter() - t

def main():
    p = argparse.ArgumentParser()
    p.add_argument('--n', type=int, default=20_000); p.add_argument('--size', type=int, default=64)
    p.add_argument('--bs', type=int, default=64)
    p.add_argument('--root', default=str(Path(tempfile.gettempdir())/'medcl_bench_cache'))
    p.add_argument('--child', default=None); p.add_argument('--cache-dir', default=None)
    a = p.parse_args()
    root = Path(a.root)/f'png{a.size}'
    if a.child: return child(a.child, root, a.size, a.bs, a.cache_dir)
    gen = make_pngs(root, a.n, a.size)
    cache_dir = Path(a.root)/'cache'
    for f in cache_dir.glob('*'): f.unlink()             # a fresh build each run
    res = {}
    for mode in ('baseline', 'preload', 'build', 'cache'):
        r = subprocess.run([sys.executable, __file__, '--child', mode, '--n', str(a.n), '--size', str(a.size), '--bs', str(a.bs),
                            '--root', a.root, '--cache-dir', str(cache_dir)], capture_output=True, text=True,
                           env={**os.environ, 'OMP_NUM_THREADS': '1'})
        if r.returncode: sys.exit(r.stderr[-3000:])
        res[mode] = json.loads(r.stdout.strip().splitlines()[-1])
    step = model_step_ips(a.size, a.bs)
    b, pre, build, cache = res['baseline'], res['preload'], res['build'], res['cache']
    mb = a.n * a.size * a.size / 2**20
    print(f"{a.n} PNGs of {a.size}x{a.size} ({mb:.0f} MiB as uint8){f', generated in {gen:.0f} s' if gen else ''}; bs {a.bs}, one thread")
    print(f"baseline (imports):           peak RSS {b['maxrss_mb']:7.0f} MiB, anon {b['rss_anon_mb']:6.0f} MiB")
    for name, r in (('preload in RAM', pre), ('cache (reused, memmap)', cache)):
        print(f"{name:28s}  peak RSS {r['maxrss_mb']:7.0f} MiB, anon {r['rss_anon_mb']:6.0f} MiB; store ready in {r['store_s']:6.1f} s; "
              f"two-view loader {r['loader_ips']:6.0f} images/s")
    print(f"cache build (first run):      {build['store_s']:.1f} s; peak RSS {build['maxrss_mb']:.0f} MiB, anon {build['rss_anon_mb']:.0f} MiB")
    print(f"ResNet18 fwd+bwd, both views: {step:6.1f} images/s")
    print(f"anon RSS above baseline, preload / cache:  {(pre['rss_anon_mb'] - b['rss_anon_mb']) / max(cache['rss_anon_mb'] - b['rss_anon_mb'], 1):.1f}x "
          f"({pre['rss_anon_mb'] - b['rss_anon_mb']:.0f} vs {cache['rss_anon_mb'] - b['rss_anon_mb']:.0f} MiB)")
    print(f"loader / model: preload {pre['loader_ips'] / step:.1f}x, cache {cache['loader_ips'] / step:.1f}x")

if __name__ == '__main__': main()
