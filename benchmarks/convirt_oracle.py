"""Does ConVIRT's text side learn when the image side can see the findings? ConVIRT's own text encoder and projection (built by
`convirt_learner` on data_samples' training reports, random init) are trained with ConVIRT's loss (tau 0.1, lambda 0.75, batch 32,
one random sentence per study, Adam) against an "image" side that is handed its study's report labels (the mention labels of the
five findings and No Finding, one-hot per state: present, negated, uncertain, not mentioned) through a Linear-ReLU-Linear head:
an image encoder that sees every finding the report states. 456 steps = the main job's 12 epochs of 38 batches. Prints the
validation loss (log 32 = 3.466 is the loss of a model whose images carry no information: every column is the positive of exactly
one row, so equal image vectors give a uniform softmax) and the mean cosine between the distinct validation sentences (near 1:
the text side collapsed). Run from the repository root, one learning rate per argument:

    python benchmarks/convirt_oracle.py 1e-4 1e-3
"""
import warnings, sys, os, tempfile; warnings.simplefilter('ignore'); sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import numpy as np, torch, torch.nn as nn
from fastai.torch_core import set_seed
from medcl_nb.experiment import find_dataset, prepare_splits
from medcl_nb.text import study_texts, image_text_dls
from medcl_nb.convirt import convirt_learner
from medcl_nb.losses import convirt_loss
torch.set_num_threads(1)
df, _ = find_dataset('data_samples'); df, _ = prepare_splits(df); df = df.reset_index(drop=True)
LAB = ['Cardiomegaly', 'Pleural Effusion', 'Consolidation', 'Pneumothorax', 'Lung Lesion', 'No Finding']
def prep(split):
    d = df[df.split == split].reset_index(drop=True); st = study_texts(d)
    Y = d.loc[[r[0] for r in st.rows], LAB].to_numpy(float)
    return torch.tensor(np.concatenate([(Y == v) for v in (1., 0., -1.)] + [np.isnan(Y)], 1).astype(np.float32)), list(st.sentences)
Xtr, Str = prep('train'); Xva, Sva = prep('valid')
for lr in [float(a) for a in sys.argv[1:]]:
    set_seed(0); rng = np.random.default_rng(0)
    tr, va = df[df.split == 'train'], df[df.split == 'valid']
    dls = image_text_dls(df[df.split != 'test'], splits=(tr, va), size=32, bs=32)
    m = convirt_learner(dls, path=tempfile.mkdtemp()).model
    tok = m.tokenizer
    img = nn.Sequential(nn.Linear(Xtr.shape[1], 512), nn.ReLU(), nn.Linear(512, 512))
    def embed_text(s): ids, mask = tok(s, max_len=128, name='s'); return m.text_head(m.text_encoder(ids, mask))
    def batch(X, S):
        i = rng.choice(len(X), 32, replace=False)
        return X[i], [S[k][rng.integers(len(S[k]))] for k in i]
    params = list(img.parameters()) + list(m.text_encoder.parameters()) + list(m.text_head.parameters())
    opt = torch.optim.Adam(params, lr); m.train()
    for step in range(456):                       # 12 epochs of 38 batches, the main job's budget
        x, s = batch(Xtr, Str); loss = convirt_loss(img(x), embed_text(s), 0.1, 0.75)
        opt.zero_grad(); loss.backward(); opt.step()
    m.eval()
    with torch.no_grad():
        va_loss = np.mean([float(convirt_loss(img(x), embed_text(s), 0.1, 0.75)) for x, s in (batch(Xva, Sva) for _ in range(100))])
        u = nn.functional.normalize(embed_text(sorted({s for ss in Sva for s in ss})), dim=-1)
        cos = float((u @ u.T)[np.triu_indices(len(u), 1)].mean())
    print(f"lr {lr:g}: text side against label-seeing images, 456 steps: valid loss {va_loss:.3f} (log 32 = 3.466), mean cosine of distinct valid sentences {cos:.3f}", flush=True)
