"""Segmentation metrics and region crops: our vectorized code against the obvious alternatives, timed in the same run.

1. HD95 of B masks: `medcl_nb.segmentation.hausdorff_distance` (one cdist over all images) vs MONAI's
   `compute_hausdorff_distance` (a loop over images, scipy KD-trees), both on the CPU.
2. Region crops: `medcl_nb.retrieval.crop_regions` (one `roi_align` call for all boxes) vs a Python loop that slices each
   box and resizes it with `F.interpolate` (what one writes first).

Run: PYTHONPATH=. python benchmarks/bench_regions.py [--threads 1]
"""
import argparse, time, warnings
import torch, torch.nn.functional as F

def best_of(fn, repeat=3):
    "Smallest wall time of `repeat` runs (the least disturbed by other jobs)."
    times = []
    for _ in range(repeat):
        t = time.perf_counter(); fn(); times.append(time.perf_counter() - t)
    return min(times)

def masks(B, size, seed):
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing='ij')
    c, r = size * (0.3 + 0.4 * torch.rand(B, 2, generator=g)), size * (0.1 + 0.15 * torch.rand(B, 1, 1, generator=g))
    return ((yy - c[:, :1, None]) ** 2 + (xx - c[:, 1:, None]) ** 2 / 0.4) < r ** 2

def main():
    p = argparse.ArgumentParser(); p.add_argument('--threads', type=int, default=1); p.add_argument('--batch', type=int, default=64)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    from monai.metrics import compute_hausdorff_distance
    from medcl_nb.segmentation import hausdorff_distance
    from medcl_nb.retrieval import crop_regions
    pred, target = masks(a.batch, 112, 0), masks(a.batch, 112, 1)
    ours = best_of(lambda: hausdorff_distance(pred, target, 95))
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        monai = best_of(lambda: compute_hausdorff_distance(pred[:, None].float(), target[:, None].float(), include_background=True, percentile=95))
    print(f"device cpu, {a.threads} thread(s)")
    print(f"HD95 of {a.batch} masks of 112x112: ours {1e3 * ours:8.1f} ms, MONAI {1e3 * monai:8.1f} ms, MONAI / ours {monai / ours:5.2f}x")
    g = torch.Generator().manual_seed(2)
    images = torch.rand(500, 1, 64, 64, generator=g)
    n = 3000
    idx = torch.randint(0, 500, (n,), generator=g)
    xy = torch.randint(0, 40, (n, 2), generator=g); wh = torch.randint(4, 24, (n, 2), generator=g)
    boxes = torch.cat([xy, wh], 1).numpy()
    def loop():
        return torch.stack([F.interpolate(images[i:i + 1, :, y:y + h, x:x + w], size=(32, 32), mode='bilinear', align_corners=False)[0]
                            for i, (x, y, w, h) in zip(idx.tolist(), boxes.tolist())])
    looped = best_of(loop)
    print(f"{n} crops to 32x32 from 64x64 images, per-box loop (slice + F.interpolate): {1e3 * looped:8.1f} ms")
    for sr in (1, 2):      # 1: one bilinear sample per output pixel, as F.interpolate; 2 (our default): 4 averaged samples
        batched = best_of(lambda: crop_regions(images, boxes, idx.numpy(), size=32, sampling_ratio=sr))
        print(f"  roi_align, sampling_ratio {sr}: {1e3 * batched:8.1f} ms, loop / roi_align {looped / batched:5.2f}x")

if __name__ == '__main__': main()
