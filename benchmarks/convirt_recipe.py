"""ConVIRT recipe on data_samples: which learning rate and which image augmentation let `convirt_learner` learn, and what
do they give? Each CONFIG (name=value pairs separated by commas, defaults in `parse`) trains `convirt_learner` with
fit_one_cycle on the training studies of data_samples (image_text_dls, the dataset's patient split) and prints one JSON line:
the training loss of the first and last epoch, the validation loss, the mean pairwise cosine of the validation images'
and sentences' embeddings (near 1: collapsed), paired image->report Recall@1/@5 on the validation studies with its chance
level, and the linear probe (medcl_nb.evaluation.linear_probe, the main job's labels, 2 draws) at the fractions in $FR,
as the difference to the same architecture at random initialization (BatchNorm calibrated), measured in the same run
(FR=none skips the probe). Also: image->report mAP on the validation studies where relevant = a shared positive finding
(No Finding included), other patients' studies only, with its chance level ('finding_mAP').
Run from the repository root:

    FR=0.1,1.0 python benchmarks/convirt_recipe.py lr=1e-3 lr=3e-4 lr=1e-4 lr=1e-4,aug=geo lr=1e-4,aug=convirt

aug: int = medical_aug(acquisition=True) (the main job's); geo = medical_aug() (geometry only); none; convirt = the
paper's photometric and crop transforms added (ablation_aug('random_resized_crop', 'brightness_contrast', 'gaussian_blur')).
freeze_text=1: the text encoder and its projection stay at their random initialization, only the image side trains (is any
image-report signal learnable?); freeze_text=2: the text encoder stays at random init, its projection trains (the paper
freezes most of its pretrained text encoder); tlr=R: the text side gets learning rate R, the image side lr (two parameter groups).
text=report: the whole report per step instead of one random sentence (`image_text_dls(text='report')`); init=PATH: the image
encoder starts from a saved encoder's weights (`medcl_experiment`'s `out/encoders/moco.pt`; the same architecture and size)
instead of random initialization, as the paper starts from ImageNet's. DATA=folder: another dataset than data_samples (e.g.
one written by `medcl_samples --finding-scale 2.5`).
CPU: one thread per run (NT to change); the GPU if there is one."""
import sys, time, json, os, warnings
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import numpy as np, torch
warnings.simplefilter('ignore')
from fastai.torch_core import set_seed
from medcl_nb.experiment import find_dataset, prepare_splits, choose_labels, random_baseline
from medcl_nb.evaluation import load_images, linear_probe, extract_features, retrieval_metrics, retrieval_chance
from medcl_nb.augment import medical_aug, ablation_aug
from medcl_nb.text import image_text_dls, study_texts
from medcl_nb.convirt import convirt_learner, embed_images, embed_reports
dev = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
if dev.type == 'cpu': torch.set_num_threads(int(os.environ.get('NT', '1')))
FR = () if os.environ.get('FR') == 'none' else tuple(float(f) for f in os.environ.get('FR', '0.1,1.0').split(','))
df, _ = find_dataset(os.environ.get('DATA', 'data_samples')); df, _ = prepare_splits(df); df = df.reset_index(drop=True)
labels, _ = choose_labels(df)
AUGS = {'int': lambda: medical_aug(acquisition=True), 'geo': lambda: medical_aug(), 'none': lambda: (lambda x: x),
        'convirt': lambda: ablation_aug('random_resized_crop', 'brightness_contrast', 'gaussian_blur', acquisition=False)}

def parse(cfg):
    c = dict(lr=1e-4, aug='int', epochs=8, size=32, bs=32, seed=0, lam=0.75, tau=0.1, pool='mean', freeze_text=0, tlr=-1.0, text='sentence', init='')
    for kv in cfg.split(','):
        if kv: a, b = kv.split('='); c[a] = type(c[a])(b)
    return c

FINDINGS = ['Cardiomegaly', 'Pleural Effusion', 'Consolidation', 'Pneumothorax', 'Lung Lesion', 'No Finding']

def mean_cos(e): return float((e @ e.T)[np.triu_indices(len(e), 1)].mean())

def run(c, images):
    set_seed(c['seed'])
    tr, va = df[df.split == 'train'], df[df.split == 'valid']
    dls = image_text_dls(df[df.split != 'test'], splits=(tr, va), size=c['size'], bs=c['bs'], text=c['text'], device=dev)
    learn = convirt_learner(dls, lr=c['lr'], aug=AUGS[c['aug']](), lambda_=c['lam'], temperature=c['tau'], text_pool=c['pool'],
                            path='/tmp/convirt_recipe')
    m = learn.model
    if c['init']: m.encoder.load_state_dict(torch.load(c['init'], map_location='cpu', weights_only=True))
    text_side = list(m.text_encoder.parameters()) + list(m.text_head.parameters())
    if c['freeze_text']:                   # 1: the whole text side; 2: the text encoder only (its projection trains)
        for p in (text_side if c['freeze_text'] == 1 else m.text_encoder.parameters()): p.requires_grad_(False)
    lrs = c['lr']
    if c['tlr'] > 0:                       # two parameter groups: image side at lr, text side at tlr
        image_side = list(m.encoder.parameters()) + list(m.image_head.parameters())
        learn.splitter, lrs = (lambda model: [image_side, text_side]), np.array([c['lr'], c['tlr']])
    t = time.time()
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(c['epochs'], lrs)
    secs = time.time() - t
    losses, vals = np.array([float(l) for l in learn.recorder.losses]), learn.recorder.values
    per_epoch = len(losses) // c['epochs']
    st = study_texts(va.reset_index(drop=True))
    first = va.index.to_numpy()[[r[0] for r in st.rows]]
    iv, rv = embed_images(learn.model, images[torch.as_tensor(first)]), embed_reports(learn.model, st.sentences)
    own = np.arange(len(st))
    r, ch = retrieval_metrics(iv, rv, own, own, ks=(1, 5)), retrieval_chance(own, own, ks=(1, 5))
    Y = va.reset_index(drop=True).loc[[r_[0] for r_ in st.rows], FINDINGS].fillna(0).to_numpy(float) > 0
    pats = st.patient_id.to_numpy()
    same_patient = pats[:, None] == pats[None, :]
    rf, chf = retrieval_metrics(iv, rv, Y, Y, ks=(5,), exclude=same_patient), retrieval_chance(Y, Y, ks=(5,), exclude=same_patient)
    return learn.encoder.eval(), dict(loss=[round(losses[:per_epoch].mean(), 3), round(losses[-per_epoch:].mean(), 3)],
        valid_loss=round(float(vals[-1][1]), 3), cos_img=round(mean_cos(iv), 3), cos_report=round(mean_cos(rv), 3),
        paired_r1=round(r['recall@1'], 3), paired_r5=round(r['recall@5'], 3), chance_r1=round(ch['recall@1'], 3),
        chance_r5=round(ch['recall@5'], 3), finding_mAP=round(rf['mAP'], 3), chance_finding_mAP=round(chf['mAP'], 3),
        loss_per_epoch=[round(losses[k * per_epoch:(k + 1) * per_epoch].mean(), 3) for k in range(c['epochs'])], pre_s=round(secs))

def probe(enc, images):
    X = extract_features(enc, images, device=dev)
    return linear_probe(X, df, labels, FR, draws=2, seed=0).metrics.groupby('fraction').auc.mean()

cache = {}
for cfg in sys.argv[1:]:
    c = parse(cfg)
    if c['size'] not in cache: cache[c['size']] = load_images(df, c['size'])
    images = cache[c['size']]
    enc, res = run(c, images)
    if not FR: print(json.dumps(dict(cfg=cfg, **res)), flush=True); continue
    key = ('random', c['size'], c['seed'])
    if key not in cache:
        cache[key] = probe(random_baseline('resnet18', images[torch.as_tensor((df.split == 'train').to_numpy())], c['seed'], dev), images)
    a, rnd = probe(enc, images), cache[key]
    res.update(diff={f: round(a[f] - rnd[f], 3) for f in a.index}, auc={f: round(v, 3) for f, v in a.items()},
               rand={f: round(v, 3) for f, v in rnd.items()})
    print(json.dumps(dict(cfg=cfg, **res)), flush=True)
