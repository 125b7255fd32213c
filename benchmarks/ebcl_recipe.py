"""EBCL recipe on data_samples/timeseries: how long does pretraining take per epoch at each window length, and what does the
pretrained triplet transformer give over the same architecture at random initialization?

Each CONFIG is max_obs:epochs:lr (e.g. 128:60:3e-3). For each config and seed: `prepare_windows(max_obs=...)`,
`pretrain_ebcl` (medium transformer, batch 32, tau 0.1), frozen features of the EBCL and the random encoder, linear probes
(`probe_tasks`: fractions 0.1 and 1.0, 3 draws; test AUC, mean over draws) and the risk read-out (`risk_readout`: ridge
read-out r on the test events) of the pre and the post window. One line per config and seed; the CPU seconds per epoch
is also printed as a ratio to the first config of the run. Run from the repository root:

    OMP_NUM_THREADS=1 python benchmarks/ebcl_recipe.py 128:30:1e-3 128:60:3e-3 128:100:3e-3 --seeds 0 1
"""
import sys, time, argparse, warnings, os
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import numpy as np, torch
warnings.simplefilter('ignore')
from medcl_nb.timeseries import (read_timeseries, prepare_windows, evaluation_table, pretrain_ebcl, random_encoder, window_features,
                                 probe_tasks, risk_readout)

p = argparse.ArgumentParser()
p.add_argument('configs', nargs='+', help='max_obs:epochs:lr')
p.add_argument('--seeds', type=int, nargs='+', default=[0])
p.add_argument('--data', default='data_samples/timeseries')
a = p.parse_args()
torch.set_num_threads(int(os.environ.get('OMP_NUM_THREADS', '1')))
tri, ev = read_timeseries(a.data)
tasks = ['mortality', 'readmission_30d', 'los_gt_3d']
print(f"{a.data}: {len(ev)} patients; torch {torch.__version__}, {torch.get_num_threads()} thread(s); AUC = test AUC of a linear probe "
      f"(mean of 3 draws at 10%, one fit at 100%); r = ridge read-out of risk on test events")
ref = None
for cfg in a.configs:
    max_obs, epochs, lr = cfg.split(':'); max_obs, epochs, lr = int(max_obs), int(epochs), float(lr)
    data = prepare_windows(tri, ev, max_obs=max_obs)
    table = evaluation_table(data, los_days=3)
    for seed in a.seeds:
        t0 = time.process_time()
        enc, hist = pretrain_ebcl(data, epochs=epochs, lr=lr, seed=seed, device='cpu')
        per_epoch = (time.process_time() - t0) / epochs
        ref = ref or per_epoch
        line = [f"max_obs {max_obs:>3} epochs {epochs:>3} lr {lr:g} seed {seed}: {per_epoch:5.2f} CPU s/epoch ({per_epoch / ref:4.2f}x); "
                f"loss {hist.train_loss.iloc[0]:.2f} -> {hist.train_loss.iloc[-1]:.2f} (valid {hist.valid_loss.iloc[-1]:.2f})"]
        for name, e in (('ebcl', enc), ('random', random_encoder(data, seed=seed, device='cpu'))):
            pre, post = window_features(e, data.dataset())
            auc = probe_tasks(pre, post, table, tasks, fractions=(0.1, 1.0), draws=3).metrics.groupby(['label', 'fraction']).auc.mean()
            r = [risk_readout(f, table, n_boot=10)['readout']['r'] for f in (pre, post)]
            line.append(f"  {name:<7} AUC " + ' '.join(f"{t[:5]}@{f:g} {v:.3f}" for (t, f), v in auc.items())
                        + f" | risk r pre {r[0]:.3f} post {r[1]:.3f}")
        print('\n'.join(line), flush=True)
