"""How much can an encoder learn from data_samples' training films in the main job's budget when it is handed the labels?
The main job's ResNet-18 (random init) with a linear head is trained with binary cross-entropy on the main job's labels of the
training films (positive = 1.0; negated, uncertain and unmentioned = 0), 12 epochs of batch 32, Adam with one-cycle at the given
learning rate, the main job's augmentation (`medical_aug(acquisition=True)`). Its features are then evaluated by the main job's
protocol (`linear_probe` at 100% of the labels, 3 draws, test patients), next to the same architecture at random initialization
(BatchNorm calibrated, `random_baseline`). This bounds what a label-free method (MoCo, ConVIRT) can be expected to gain over
random init at this budget: ConVIRT's loss carries a weaker version of the same signal (a random sentence of the report
instead of the labels). Prints one JSON line per configuration. Run from the repository root:

    python benchmarks/supervised_ceiling.py size=32,lr=1e-4 size=64,lr=1e-4

One CPU thread per run (NT to change).
"""
import sys, os, json, time, warnings; warnings.simplefilter('ignore')
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import numpy as np, torch, torch.nn as nn, torch.nn.functional as F
from fastai.torch_core import set_seed
from medcl_nb.experiment import find_dataset, prepare_splits, choose_labels, random_baseline
from medcl_nb.evaluation import load_images, linear_probe, extract_features
from medcl_nb.augment import medical_aug
from medcl_nb.simclr import build_encoder
torch.set_num_threads(int(os.environ.get('NT', '1')))
df, _ = find_dataset('data_samples'); df, _ = prepare_splits(df); df = df.reset_index(drop=True)
labels, _ = choose_labels(df)

def parse(cfg):
    c = dict(size=32, lr=1e-4, epochs=12, bs=32, seed=0)
    for kv in cfg.split(','):
        if kv: a, b = kv.split('='); c[a] = type(c[a])(b)
    return c

def train_supervised(images, c):
    "ResNet-18 + linear head, BCE on the training films' labels; returns the encoder and the first/last epoch's mean loss."
    set_seed(c['seed'])
    train = torch.as_tensor((df.split == 'train').to_numpy())
    X, Y = images[train], torch.tensor(df.loc[train.numpy(), labels].fillna(0).to_numpy(float) > 0).float()
    enc = build_encoder('resnet18', 1, c['size'], False, 'batch'); head = nn.Linear(512, len(labels))
    params = list(enc.parameters()) + list(head.parameters())
    steps_per_epoch = len(X) // c['bs']
    opt = torch.optim.Adam(params, lr=c['lr'])
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=c['lr'], total_steps=c['epochs'] * steps_per_epoch, pct_start=0.25)
    aug, losses = medical_aug(acquisition=True), []
    for epoch in range(c['epochs']):
        enc.train(); perm, epoch_loss = torch.randperm(len(X)), []
        for k in range(steps_per_epoch):
            i = perm[k * c['bs']:(k + 1) * c['bs']]
            loss = F.binary_cross_entropy_with_logits(head(enc(aug(X[i]))), Y[i])
            opt.zero_grad(); loss.backward(); opt.step(); sched.step(); epoch_loss.append(loss.item())
        losses.append(float(np.mean(epoch_loss)))
    return enc.eval(), losses

def probe_auc(enc, images):
    m = linear_probe(extract_features(enc, images), df, labels, (1.0,), draws=3, seed=0).metrics
    return float(m.auc.mean())

for cfg in sys.argv[1:]:
    c = parse(cfg); images = load_images(df, c['size'])
    t = time.time(); enc, losses = train_supervised(images, c); secs = time.time() - t
    train = images[torch.as_tensor((df.split == 'train').to_numpy())]
    rand = probe_auc(random_baseline('resnet18', train, c['seed'], torch.device('cpu')), images)
    sup = probe_auc(enc, images)
    print(json.dumps(dict(cfg=cfg, labels=labels, bce_first_last=[round(losses[0], 4), round(losses[-1], 4)],
                          probe_auc_100pct=dict(supervised=round(sup, 3), random_init=round(rand, 3), diff=round(sup - rand, 3)),
                          train_s=round(secs))), flush=True)
