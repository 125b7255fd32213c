#!/usr/bin/env bash
# The GPU checks as one prepared run (about 8 minutes on one H200), for a machine whose Python has torch but not
# fastai/nbdev. Wheels of the pure-Python stack for that machine's Python go in .whl/ first, from a machine with
# pip access (see CONTRIBUTING.md, "Running the GPU cells"). Results land in $OUT (default ./gpu_out).
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg
OUT=${OUT:-gpu_out}; mkdir -p "$OUT"
t0=$(date +%s); el() { echo "[$(( $(date +%s) - t0 )) s] $*"; }
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl > "$OUT/install.log" 2>&1
  export PYTHONPATH=/tmp/site:$PWD PATH=/tmp/site/bin:$PATH
fi
python3 -c "import torch, fastai.learner, ipywidgets; assert torch.cuda.is_available(), 'no CUDA device'" || exit 3
el "set up"; nvidia-smi -L
timeout 300 python3 "$(command -v nbdev_test)" --flags cuda --n_workers 6 --timing > "$OUT/nbdev_test.log" 2>&1
echo "nbdev_test rc=$?" >> "$OUT/nbdev_test.log"; el tests; tail -20 "$OUT/nbdev_test.log"
{ timeout 180 python3 benchmarks/run_gpu.py --fastai-adam; timeout 60 python3 benchmarks/bench_losses.py --device cuda
  timeout 60 python3 benchmarks/bench_loader.py --root data_samples/cxr --device cuda
  # the distributed code path (fastai distrib_ctx + Accelerate, world size 1 through torchrun) vs the plain learner
  timeout 150 python3 -m torch.distributed.run --nproc_per_node 1 benchmarks/bench_distributed.py --world1 --device cuda
} > "$OUT/bench.log" 2>&1
el benchmarks; cat "$OUT/bench.log"
timeout 400 python3 -c "from medcl_nb.experiment import medcl_experiment_cli as m; m(['--device', 'cuda', '--out', '$OUT/experiment', '--no-progress'])" \
  > "$OUT/main_cuda.log" 2>&1; echo "main rc=$?" >> "$OUT/main_cuda.log"; el "main job"; tail -12 "$OUT/main_cuda.log"
