"""Do local losses help the localized task more than the global one (Müller et al.)? On data_samples, for each pretraining
seed, `lovt_learner` is trained three ways that differ only in the loss (same encoder: resnet18 at output stride 16, a 4x4
grid at 64 px; same data, augmentation without flips, learning rate, epochs and seed):

    global    ConVIRT's global loss alone (local_loss=None)
    unif      + LocalAlignment and LocalUniformity in both modalities (local_loss='uniformity', the default)
    contr     + LoVT's local contrastive loss (local_loss='contrastive')

Each model is evaluated on the test patients of the dataset's split with `medcl_nb.local.localization_eval` (pointing game by
attention and by global-head similarity; the frozen-feature cell probe with the random-init and cell-position references),
and the variants are compared pairwise on the same test cases and cells (paired patient bootstrap). One JSON line per run,
then one per comparison, to stdout and to OUT (default benchmarks/results/lovt_localization.jsonl). Run from the repository root:

    SEEDS=0,1,2 VARIANTS=global,unif,contr EPOCHS=10 python benchmarks/lovt_localization.py

MAXP=100 (patients) makes a quick smoke run. CPU: NT threads (default 2); the GPU if there is one."""
import sys, time, json, os, warnings
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import numpy as np, torch
warnings.simplefilter('ignore')
from fastai.torch_core import set_seed
from medcl_nb.experiment import find_dataset, prepare_splits, subsample_patients
from medcl_nb.evaluation import load_images, bootstrap_ci
from medcl_nb.local import (lovt_dls, lovt_learner, localization_eval, random_encoder_like, read_boxes, find_boxes,
                            patient_mean_ci)

dev = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
if dev.type == 'cpu': torch.set_num_threads(int(os.environ.get('NT', '2')))
SEEDS = [int(s) for s in os.environ.get('SEEDS', '0,1,2').split(',')]
VARIANTS = os.environ.get('VARIANTS', 'global,unif,contr').split(',')
EPOCHS, BS, SIZE, LR, BOOT = int(os.environ.get('EPOCHS', 10)), int(os.environ.get('BS', 32)), 64, float(os.environ.get('LR', 1e-4)), 1000
OUT = Path(os.environ.get('OUT', 'benchmarks/results/lovt_localization.jsonl'))
LOSSES = {'global': None, 'unif': 'uniformity', 'contr': 'contrastive'}

df, _ = find_dataset('data_samples'); df = subsample_patients(df, int(os.environ['MAXP']) if 'MAXP' in os.environ else None)
df, _ = prepare_splits(df); df = df.reset_index(drop=True)
boxes = read_boxes(find_boxes(df))
images = load_images(df, SIZE)
train, valid = df[df.split == 'train'], df[df.split == 'valid']

def emit(rec):
    print(json.dumps(rec), flush=True)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with OUT.open('a') as f: f.write(json.dumps(rec) + '\n')

def pretrain(variant, seed):
    set_seed(seed)
    dls = lovt_dls(df[df.split != 'test'], splits=(train, valid), bs=BS, size=SIZE, device=dev)
    learn = lovt_learner(dls, local_loss=LOSSES[variant], lr=LR, path='/tmp/lovt_localization')
    t, c = time.time(), time.process_time()
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(EPOCHS, LR)
    per_epoch = len(learn.recorder.losses) // EPOCHS
    losses = [float(l) for l in learn.recorder.losses]
    names = list(learn.recorder.metric_names[1:-1])
    return learn.model.eval(), dict(wall_s=round(time.time() - t), cpu_s=round(time.process_time() - c),
                                    loss_first_epoch=round(np.mean(losses[:per_epoch]), 3), loss_last_epoch=round(np.mean(losses[-per_epoch:]), 3),
                                    last_epoch=dict(zip(names, [round(float(v), 4) for v in learn.recorder.values[-1]])))

raw = {}
for seed in SEEDS:
    rnd = random_encoder_like('resnet18', 16, images[torch.tensor((df.split == "train").to_numpy())], seed, dev)
    for v in VARIANTS:
        model, info = pretrain(v, seed)
        t = time.time()
        res = localization_eval(model, df, images, boxes, random_encoder=rnd, n_boot=BOOT, seed=seed)
        raw[v, seed] = res.attrs['raw']
        emit(dict(kind='run', variant=v, seed=seed, epochs=EPOCHS, lr=LR, bs=BS, eval_s=round(time.time() - t), **info,
                  results=[{k: (round(x, 4) if isinstance(x, float) else x) for k, x in r.items()} for r in res.to_dict('records')]))
    # paired comparisons within the seed: the same test cases and cells
    for a, b in [(a, 'global') for a in VARIANTS if a != 'global' and 'global' in VARIANTS] + \
                ([('contr', 'unif')] if {'contr', 'unif'} <= set(VARIANTS) else []):
        ra, rb = raw[a, seed], raw[b, seed]
        rec = dict(kind='comparison', seed=seed, a=a, b=b)
        for how in ('attention', 'similarity'):
            d = patient_mean_ci(ra[f'hits_{how}'].astype(float) - rb[f'hits_{how}'].astype(float), ra['case_patients'], BOOT, seed)
            rec[f'pointing_{how}_diff'] = [round(d['value'], 4), round(d['lo'], 4), round(d['hi'], 4)]
        r = bootstrap_ci(ra['targets'], ra['scores']['frozen features'], n=BOOT, by=ra['patients'],
                         y_score_ref=rb['scores']['frozen features'], seed=seed)
        rec['probe_auc_diff'] = [round(r['estimate'], 4), round(r['lo'], 4), round(r['hi'], 4)]
        emit(rec)
