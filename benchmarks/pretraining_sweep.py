"""Pretraining sweep on data_samples: which augmentation, step budget, temperature, encoder or method makes contrastive
pretraining beat the same encoder at random initialization (BatchNorm calibrated) in a linear probe?

A plain PyTorch loop built from medcl_nb's pieces (encoder, MoCo v2 head, momentum copy, info_nce / nt_xent, medical_aug),
sampling batches with replacement, then `medcl_nb.evaluation.linear_probe` (5 labels, 3 draws) at the fractions in $FR.
Each CONFIG is name=value pairs separated by commas (defaults in `parse`); one JSON line per config:
loss (mean of the first and last 10 steps), pretraining seconds, mean AUC of the pretrained and random encoders per
fraction and their difference. Run from the repository root:

    FR=0.1,0.25,1.0 python benchmarks/pretraining_sweep.py arch=r18,steps=1000 arch=r18,steps=1000,aug=int

aug: none = geometric medical_aug only; int = + acquisition jitter with AcquisitionJitter's default ranges (the same
map, written inline: gamma 0.3, gain 0.25, offset 0.1, noise 0.03); int1 / int2 = milder / stronger ranges.
arch: r18 = encoder('resnet18'); r18nomp = without its max-pool; r18s1 = also a stride-1 3x3 stem; cnnW = a plain
8-conv CNN of widths W..8W. Uses the GPU if there is one (the results in benchmarks/README.md came from one H200)."""
import sys, time, json, math, warnings, itertools, os
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import numpy as np, pandas as pd, torch, torch.nn as nn, torch.nn.functional as F
warnings.simplefilter('ignore')
from medcl_nb.experiment import find_dataset, prepare_splits, choose_labels, calibrate_batchnorm
from medcl_nb.evaluation import load_images, linear_probe, extract_features
from medcl_nb.models import encoder, moco_v2_head, momentum_copy, momentum_update_, Encoder
from medcl_nb.losses import info_nce, nt_xent
from medcl_nb.augment import medical_aug
dev = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
if dev.type == 'cpu': torch.set_num_threads(int(os.environ.get('NT', '2')))
df, _ = find_dataset('data_samples'); df, _ = prepare_splits(df); df = df.reset_index(drop=True)
labels, _ = choose_labels(df)
imgs = load_images(df, 64)
train = imgs[torch.as_tensor((df.split == 'train').to_numpy())]
FR = tuple(float(f) for f in os.environ.get('FR', '0.05,0.1,0.25,1.0').split(','))

def block(ci, co, s): return nn.Sequential(nn.Conv2d(ci, co, 3, s, 1, bias=False), nn.BatchNorm2d(co), nn.ReLU(inplace=True))
def make(arch):
    if arch == 'r18': return encoder('resnet18')
    if arch == 'r18nomp': e = encoder('resnet18'); e.body[3] = nn.Identity(); return e
    if arch == 'r18s1':
        e = encoder('resnet18'); e.body[3] = nn.Identity(); c = e.body[0]
        e.body[0] = nn.Conv2d(1, 64, 3, 1, 1, bias=False); return e
    if arch.startswith('cnn'):   # cnnW: widths W,2W,4W,8W, two convs per stage, 64->32->16->8->4
        w = int(arch[3:] or 32)
        layers, ci = [block(1, w, 1)], w
        for co in (w, 2*w, 4*w, 8*w): layers += [block(ci, co, 2), block(co, co, 1)]; ci = co
        return Encoder(nn.Sequential(*layers), nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()), ci, 1)
    raise ValueError(arch)

def intensity(x, g=0.25, o=0.1, gam=0.3, noise=0.03):
    "clip(gain * x**gamma + offset + sigma * eps): AcquisitionJitter's map, drawn per sample."
    n = len(x); d = x.device
    u = lambda lo, hi: (torch.rand(n, 1, 1, 1, device=d) * (hi - lo) + lo)
    x = x.clamp(0, 1) ** torch.exp(u(-gam, gam))
    x = x * u(1 - g, 1 + g) + u(-o, o)
    return (x + u(0, noise) * torch.randn_like(x)).clamp(0, 1)

def pretrain(arch, method, steps, bs, lr, aug, seed, K=256, m=0.99, tau=0.2):
    torch.manual_seed(seed); np.random.seed(seed)
    enc = make(arch).to(dev); head = moco_v2_head(enc.num_features).to(dev)
    q = nn.Sequential(enc, head); k = momentum_copy(q) if method == 'moco' else None
    queue = F.normalize(torch.randn(K, 128, device=dev), dim=1); ptr = 0
    opt = torch.optim.Adam(q.parameters(), lr=lr, weight_decay=1e-6)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps, pct_start=0.25)
    geo = medical_aug()
    def view(x):
        v = geo(x)
        return intensity(v, **aug) if aug is not None else v
    X = train.to(dev); losses = []
    for s in range(steps):
        xb = X[torch.randint(len(X), (bs,), device=dev)]
        v1, v2 = view(xb), view(xb)
        if method == 'moco':
            zq = q(v1)
            with torch.no_grad(): zk = k(v2)
            loss = info_nce(zq, zk, tau, queue)
        else:
            loss = nt_xent(q(v1), q(v2), tau)
        opt.zero_grad(); loss.backward(); opt.step(); sched.step()
        if method == 'moco':
            momentum_update_(k, q, m)
            zk = F.normalize(zk.float(), dim=1); idx = (ptr + torch.arange(bs, device=dev)) % K
            queue[idx] = zk; ptr = (ptr + bs) % K
        losses.append(loss.item())
    return enc.eval(), float(np.mean(losses[:10])), float(np.mean(losses[-10:]))

def probe(enc):
    X = extract_features(enc, imgs, device=dev)
    r = linear_probe(X, df, labels, FR, draws=3, seed=0)
    return r.metrics.groupby('fraction').auc.mean()

def parse(cfg):
    c = dict(arch='r18', method='moco', steps=100, bs=32, lr=1e-3, aug='none', seed=0, tau=0.2, m=0.99, K=256)
    for kv in cfg.split(','):
        if kv: a, b = kv.split('='); c[a] = type(c[a])(b)
    return c
AUGS = {'none': None, 'int': {}, 'int2': dict(g=0.4, o=0.15, gam=0.5, noise=0.05), 'int1': dict(g=0.15, o=0.05, gam=0.2, noise=0.02)}
rand_cache = {}
for cfg in sys.argv[1:]:
    c = parse(cfg); t = time.time()
    enc, l0, l1 = pretrain(c['arch'], c['method'], c['steps'], c['bs'], c['lr'], AUGS[c['aug']], c['seed'], c['K'], c['m'], c['tau'])
    tp = time.time() - t
    a = probe(enc)
    key = (c['arch'], c['seed'])
    if key not in rand_cache:
        torch.manual_seed(c['seed']); rand_cache[key] = probe(calibrate_batchnorm(make(c['arch']).to(dev), train.to(dev), device=dev))
    r = rand_cache[key]
    print(json.dumps(dict(cfg=cfg, loss=[round(l0, 2), round(l1, 2)], pre_s=round(tp, 1),
                          ssl={f: round(v, 3) for f, v in a.items()}, diff={f: round(a[f] - r[f], 3) for f in a.index},
                          rand={f: round(v, 3) for f, v in r.items()})), flush=True)
