"""IGCL vs MoCo (and IGCL's ablations) on one dataset, with the main job's protocol (medcl_nb.experiment).

    python benchmarks/igcl_comparison.py --out igcl_runs --runs moco:0 igcl:0 moco:1 igcl:1 moco:2 igcl:2 \
        igcl-nocomponents:0 igcl-nomask:0 igcl-mean:0
    python benchmarks/igcl_comparison.py --out igcl_runs --report      # the tables, from the saved features

Each run pretrains one encoder (method:seed) on the training split of `--data` (the main job's split, labels and
recipe: 12 epochs, batch 32, 64 px (--size), Adam one-cycle 1e-3, medical_aug with acquisition jitter; MoCo with K 256,
m 0.99, tau 0.1 as `medcl_experiment`'s defaults; IGCL with `igcl_learner`'s defaults), embeds every image and saves
the features to OUT/features/<method>_s<seed>.npy, so runs can be added one at a time. `--report` evaluates all saved
features on the same test patients and label draws: linear probes at label fractions with paired patient-bootstrap
CIs against the BatchNorm-calibrated random encoder and, for each IGCL run, against MoCo of the same seed, for each
ablation against full IGCL of the same seed; and
few-shot prototype classifiers (k patients per class). The methods:

    moco                 medcl_nb.experiment.pretrain(method='moco')
    igcl                 medcl_nb.graph.pretrain_igcl: component nodes, padding mask, max pooling (the defaults)
    igcl-nocomponents    without the component and global nodes
    igcl-nomask          without the transformer's padding mask (the reference code's behaviour)
    igcl-mean            mean pooling instead of max (the reference code's choice)

The graphs' tokenizer: medcl_nb.text's ReportTokenizer trained on the training reports when that module exists,
else a word vocabulary of the training reports' entities (`--tokenizer words` forces the latter).
"""
import argparse, json, sys, time, warnings
from pathlib import Path
import numpy as np, pandas as pd, torch

ABLATIONS = {'igcl': {}, 'igcl-nocomponents': dict(components=False), 'igcl-nomask': dict(attention_mask=False),
             'igcl-mean': dict(pool='mean')}
METHODS = ('moco', *ABLATIONS)

class WordVocab:
    "Lower-cased whitespace words of the training reports' entities; 0 pads, 1 is an unknown word."
    def __init__(self, texts): self.ids = {w: i + 2 for i, w in enumerate(sorted({w for t in texts for w in t.lower().split()}))}
    def __call__(self, text): return [self.ids.get(w, 1) for w in text.lower().split()]
    def __len__(self): return len(self.ids) + 2

def prepare(data, seed=0, max_patients=None, size=64):
    "The main job's data: the dataset, its completed split, the labels, and the images at 64 px."
    from medcl_nb.experiment import find_dataset, prepare_splits, choose_labels, subsample_patients
    from medcl_nb.evaluation import load_images
    df, source = find_dataset(data)
    df = subsample_patients(df, max_patients, seed)
    df, note = prepare_splits(df, seed=seed)
    df = df.reset_index(drop=True)
    labels, dropped = choose_labels(df)
    return df, labels, load_images(df, size), f"{source}; {note}"

def tokenizer_for(df, graphs, kind):
    train = df[df.split == 'train']
    if kind == 'report':
        try:
            from medcl_nb.text import ReportTokenizer
            return ReportTokenizer.train(train.drop_duplicates('study_id')['report'].dropna()), 'ReportTokenizer (medcl_nb.text)'
        except ImportError: pass
    from medcl_nb.graph import match_graphs
    keys = [k for k in match_graphs(train, graphs) if k is not None]
    return WordVocab([e['tokens'] for k in keys for e in graphs[k]['entities'].values()]), 'word vocabulary of the training entities'

def run_one(method, seed, df, images, out, device, epochs, tokenizer_kind, size=64):
    from medcl_nb.experiment import pretrain
    from medcl_nb.graph import pretrain_igcl, find_radgraph
    from medcl_nb.evaluation import extract_features
    from medcl_nb.data.readers import read_radgraph
    t, cpu = time.time(), time.process_time()
    common = dict(arch='resnet18', epochs=epochs, bs=32, lr=1e-3, size=size, device=device, seed=seed, progress=False)
    if method == 'moco':
        enc, history = pretrain(df, 'moco', queue_size=256, momentum=0.99, temperature=0.1, acquisition_aug=True, **common)
        note = 'MoCo, K 256, m 0.99, tau 0.1'
    else:
        graphs = read_radgraph(find_radgraph(df))
        tok, note = tokenizer_for(df, graphs, tokenizer_kind)
        enc, history = pretrain_igcl(df, graphs=graphs, tokenizer=tok, **common, **ABLATIONS[method])
    feats = extract_features(enc, images, device=device)
    (out/'features').mkdir(parents=True, exist_ok=True)
    np.save(out/'features'/f'{method}_s{seed}.npy', feats)
    meta = dict(method=method, seed=seed, epochs=epochs, history=history, note=note, wall_s=time.time() - t,
                cpu_s=time.process_time() - cpu, torch_threads=torch.get_num_threads())
    (out/'features'/f'{method}_s{seed}.json').write_text(json.dumps(meta, indent=1))
    print(f"{method} seed {seed}: {meta['wall_s']:.0f} s wall, {meta['cpu_s']:.0f} s CPU; last epoch {history[-1]}", flush=True)

def report(df, labels, images, out, fractions, draws, boot, few_k, device):
    from medcl_nb.experiment import random_baseline
    from medcl_nb.evaluation import extract_features, linear_probe, paired_differences, few_shot
    train = torch.as_tensor((df.split == 'train').to_numpy())
    feats = {'random': extract_features(random_baseline('resnet18', images[train], 0, device), images, device=device)}
    for f in sorted((out/'features').glob('*.npy')): feats[f.stem] = np.load(f)
    probes = {n: linear_probe(X, df, labels, fractions, draws, seed=0) for n, X in feats.items()}
    vs_random = paired_differences(probes, df, 'random', boot, seed=0)
    vs_moco = [paired_differences({n: probes[n], f'moco_s{s}': probes[f'moco_s{s}']}, df, f'moco_s{s}', boot, seed=0)
               for n in probes if n.startswith('igcl') for s in [n.rsplit('_s', 1)[1]] if f'moco_s{s}' in probes]
    vs_moco = pd.concat(vs_moco, ignore_index=True) if vs_moco else None
    vs_igcl = [paired_differences({n: probes[n], f'igcl_s{s}': probes[f'igcl_s{s}']}, df, f'igcl_s{s}', boot, seed=0)
               for n in probes if n.startswith('igcl-') for s in [n.rsplit('_s', 1)[1]] if f'igcl_s{s}' in probes]
    vs_igcl = pd.concat(vs_igcl, ignore_index=True) if vs_igcl else None
    fs = pd.concat([few_shot(X, df, labels, k=few_k, draws=draws, seed=0).assign(encoder=n) for n, X in feats.items()], ignore_index=True)
    metrics = pd.concat([p.metrics.assign(encoder=n) for n, p in probes.items()], ignore_index=True)
    for name, table in (('linear_vs_random', vs_random), ('linear_vs_moco', vs_moco), ('ablations_vs_igcl', vs_igcl), ('few_shot', fs),
                        ('linear_metrics', metrics)):
        if table is not None: table.to_csv(out/f'{name}.csv', index=False)
    histories = {f.stem: json.loads(f.read_text()) for f in sorted((out/'features').glob('*.json'))}
    print_tables(vs_random, vs_moco, fs, histories, vs_igcl)
    return vs_random, vs_moco, fs

def print_tables(vs_random, vs_moco, fs, histories, vs_igcl=None):
    mean = lambda t: t[t.label == 'mean']
    print("\nLinear probe, mean AUC over labels; difference to the random encoder [95% paired patient-bootstrap CI]")
    for (enc, f), r in mean(vs_random).set_index(['encoder', 'fraction']).sort_index().iterrows():
        print(f"{enc:>22} {f:>6g} {r.n_train_patients:>6.1f} pts  AUC {r.auc:.3f}  vs random {r.auc_ref:.3f}: {r['diff']:+.3f} [{r.lo:+.3f}, {r.hi:+.3f}]")
    if vs_moco is not None:
        print("\nIGCL runs against MoCo of the same pretraining seed")
        for (enc, f), r in mean(vs_moco).set_index(['encoder', 'fraction']).sort_index().iterrows():
            print(f"{enc:>22} {f:>6g}  AUC {r.auc:.3f} vs {r.reference} {r.auc_ref:.3f}: {r['diff']:+.3f} [{r.lo:+.3f}, {r.hi:+.3f}]")
    if vs_igcl is not None:
        print("\nAblations against IGCL (components, padding mask, max pooling) of the same pretraining seed")
        for (enc, f), r in mean(vs_igcl).set_index(['encoder', 'fraction']).sort_index().iterrows():
            print(f"{enc:>22} {f:>6g}  AUC {r.auc:.3f} vs {r.reference} {r.auc_ref:.3f}: {r['diff']:+.3f} [{r.lo:+.3f}, {r.hi:+.3f}]")
    print("\nFew-shot prototypes: mean AUC over labels, mean (sd over draws) per k")
    g = fs.groupby(['encoder', 'k', 'draw']).auc.mean().groupby(['encoder', 'k']).agg(['mean', 'std']).unstack('k')
    print(g.round(3).to_string())
    print("\nPretraining: seconds (wall, CPU) and the last epoch's losses")
    for n, h in histories.items():
        print(f"{n:>22} {h['wall_s']:>6.0f} {h['cpu_s']:>6.0f}  {h['history'][-1]}  ({h['note']})")

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument('--data', default='data_samples'); p.add_argument('--out', default='igcl_runs')
    p.add_argument('--runs', nargs='*', default=[], help="method:seed, methods: " + ', '.join(METHODS))
    p.add_argument('--report', action='store_true'); p.add_argument('--epochs', type=int, default=12)
    p.add_argument('--size', type=int, default=64, help="image size in pixels (pretraining and evaluation)")
    p.add_argument('--fractions', type=float, nargs='+', default=[0.01, 0.02, 0.05, 0.1, 0.25, 1.0])
    p.add_argument('--draws', type=int, default=5); p.add_argument('--boot', type=int, default=1000)
    p.add_argument('--few-shot', type=int, nargs='+', default=[1, 5, 10, 50])
    p.add_argument('--device', default=None); p.add_argument('--threads', type=int, default=2)
    p.add_argument('--tokenizer', choices=('report', 'words'), default='report')
    p.add_argument('--max-patients', type=int, default=None, help="a quick check on a subset")
    a = p.parse_args(argv)
    for r in a.runs:
        m, _, s = r.partition(':')
        if m not in METHODS or not s.isdigit(): p.error(f"--runs: {r!r} is not method:seed with a method in {METHODS}")
    torch.set_num_threads(a.threads)
    warnings.filterwarnings('ignore', category=UserWarning)
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    df, labels, images, source = prepare(a.data, max_patients=a.max_patients, size=a.size)
    print(f"data: {source}; {len(df)} images, {df.patient_id.nunique()} patients; labels {labels}", flush=True)
    device = torch.device(a.device) if a.device else torch.device('cpu')
    for r in a.runs:
        m, _, s = r.partition(':')
        if (out/'features'/f'{m}_s{s}.npy').exists(): print(f"{r}: features exist, skipped"); continue
        run_one(m, int(s), df, images, out, device, a.epochs, a.tokenizer, a.size)
    if a.report: report(df, labels, images, out, a.fractions, a.draws, a.boot, a.few_shot, device)

if __name__ == '__main__': main()
