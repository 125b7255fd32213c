"""What does a finer grid of image cells cost? Notebook 11 (section 1) needs more than the 2x2 last map that resnet18 leaves at
64 pixels. Forward + backward of resnet18 (1 input channel) on a batch of BS images, for each way to a finer grid, as a ratio
to the plain network at 64 pixels: floating-point operations counted by torch.utils.flop_counter (exact, independent of the
machine's load) and the median time of REPS steps after one warm-up step (noisy on a shared machine):

    plain 64 px        output stride 32, a 2x2 map (the reference)
    os16 64 px         `reduce_output_stride(enc, 16)`: the last stage at stride 1, dilation 2, a 4x4 map
    os8 64 px          output stride 8: the last two stages, an 8x8 map
    plain 128 px       a 4x4 map from a twice larger input
    stage-3 map 64 px  the 256-channel map of stage 3 (4x4) is computed anyway: the same cost as plain

Run from the repository root:  python benchmarks/bench_lovt_grid.py   (NT threads, default 2; BS default 32; REPS default 5)"""
import sys, os, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import numpy as np, torch
from torch.utils.flop_counter import FlopCounterMode
from medcl_nb.models import encoder
from medcl_nb.local import reduce_output_stride

torch.set_num_threads(int(os.environ.get('NT', '2')))
BS, REPS = int(os.environ.get('BS', 32)), int(os.environ.get('REPS', 5))

def step_flops(enc, size):
    "Floating-point operations of one forward + backward (sum of the last map) on BS images."
    with FlopCounterMode(display=False) as count: enc.forward_features(torch.rand(BS, 1, size, size)).sum().backward()
    return count.get_total_flops()

def step_time(enc, size):
    "Median seconds of one forward + backward (sum of the last map) on BS random images."
    x = torch.rand(BS, 1, size, size)
    times = []
    for k in range(REPS + 1):
        t = time.perf_counter()
        enc.zero_grad(); enc.forward_features(x).sum().backward()
        if k: times.append(time.perf_counter() - t)
    return float(np.median(times)), tuple(enc.forward_features(x[:1]).shape[-2:])

torch.manual_seed(0)
variants = [('plain 64 px', encoder('resnet18'), 64), ('os16 64 px', reduce_output_stride(encoder('resnet18'), 16), 64),
            ('os8 64 px', reduce_output_stride(encoder('resnet18'), 8), 64), ('plain 128 px', encoder('resnet18'), 128)]
print(f"resnet18 forward+backward, {BS} images, {torch.get_num_threads()} threads, median of {REPS}")
ref = None
for name, enc, size in variants:
    f = step_flops(enc.train(), size)
    t, grid = step_time(enc, size)
    ref = ref or (f, t)
    print(f"{name:<14} grid {grid[0]}x{grid[1]}  {f / 1e9:6.1f} GFLOP  ratio {f / ref[0]:5.2f}   {t * 1000:7.0f} ms  ratio {t / ref[1]:5.2f}")
