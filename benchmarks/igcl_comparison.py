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
    convirt              medcl_nb.experiment.PRETRAINERS['convirt'] (image-text, lr 1e-4, tau 0.1: the main job's recipe)
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
METHODS = ('moco', 'convirt', *ABLATIONS)

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
    elif method == 'convirt':
        from medcl_nb.experiment import PRETRAINERS, default_lr
        pre = PRETRAINERS['convirt'](df, **{**common, 'lr': default_lr('convirt')}, temperature=0.1, acquisition_aug=True)
        enc, history, note = pre.encoder, pre.history, 'ConVIRT, lr 1e-4, tau 0.1'
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
    same_seed = lambda methods, ref: same_seed_differences(probes, df, methods, ref, boot)
    vs_moco = same_seed(lambda m: m.startswith('igcl') or m == 'convirt', 'moco')
    vs_convirt = same_seed(lambda m: m == 'igcl', 'convirt')
    vs_igcl = same_seed(lambda m: m.startswith('igcl-'), 'igcl')
    seeds = pd.concat([over_seeds(t) for t in (vs_moco, vs_convirt, vs_igcl) if t is not None], ignore_index=True)
    fs = pd.concat([few_shot(X, df, labels, k=few_k, draws=draws, seed=0).assign(encoder=n) for n, X in feats.items()], ignore_index=True)
    available = k_available(df, labels)
    shots = shot_comparison(fs, 'igcl', 5, 'moco', 50) if {5, 50} <= set(few_k) else None
    metrics = pd.concat([p.metrics.assign(encoder=n) for n, p in probes.items()], ignore_index=True)
    tables = dict(linear_vs_random=vs_random, linear_vs_moco=vs_moco, linear_igcl_vs_convirt=vs_convirt, ablations_vs_igcl=vs_igcl,
                  over_seeds=seeds, few_shot=fs, five_vs_fifty_shot=shots, linear_metrics=metrics)
    for name, table in tables.items():
        if table is not None: table.to_csv(out/f'{name}.csv', index=False)
    histories = {f.stem: json.loads(f.read_text()) for f in sorted((out/'features').glob('*.json'))}
    mean = lambda t: None if t is None else t[t.label == 'mean'].to_dict(orient='records')
    summary = dict(labels=list(labels), fractions=list(fractions), draws=draws, boot=boot, few_shot_k=list(few_k),
                   patients_per_class_available=available, linear_vs_random=mean(vs_random), linear_vs_moco=mean(vs_moco),
                   linear_igcl_vs_convirt=mean(vs_convirt), ablations_vs_igcl=mean(vs_igcl), over_seeds=seeds.to_dict(orient='records'),
                   few_shot=few_shot_means(fs).to_dict(orient='records'),
                   five_vs_fifty_shot=None if shots is None else shots.to_dict(orient='records'),
                   pretraining={n: {k: h[k] for k in ('wall_s', 'cpu_s', 'note', 'epochs')} | dict(last_epoch=h['history'][-1])
                                for n, h in histories.items()})
    (out/'report.json').write_text(json.dumps(summary, indent=1, default=float))
    print_tables(vs_random, vs_moco, fs, histories, vs_igcl, vs_convirt, seeds, available, shots)
    return summary

def same_seed_differences(probes, df, is_method, ref, boot):
    "Paired patient-bootstrap differences of each `<method>_s<seed>` (is_method(method) true) against `<ref>_s<seed>`."
    from medcl_nb.evaluation import paired_differences
    rows = []
    for n in probes:
        m, _, s = n.rpartition('_s')
        if m != 'random' and is_method(m) and f'{ref}_s{s}' in probes:
            rows.append(paired_differences({n: probes[n], f'{ref}_s{s}': probes[f'{ref}_s{s}']}, df, f'{ref}_s{s}', boot, seed=0))
    return pd.concat(rows, ignore_index=True) if rows else None

def t_interval(x, ci=0.95):
    "Mean of `x` with Student's t interval (n - 1 degrees of freedom); NaN bounds for a single value."
    from scipy import stats
    x = np.asarray(x, float); n = len(x)
    if n < 2: return x.mean(), np.nan, np.nan
    half = stats.t.ppf(0.5 + ci / 2, n - 1) * x.std(ddof=1) / np.sqrt(n)
    return x.mean(), x.mean() - half, x.mean() + half

def over_seeds(table):
    "Mean-over-labels differences of the same-seed pairs, averaged over pretraining seeds with a t-interval over seeds."
    t = table[table.label == 'mean'].assign(method=lambda d: d.encoder.str.rpartition('_s')[0],
                                            ref=lambda d: d.reference.str.rpartition('_s')[0])
    rows = []
    for (m, r, f), g in t.groupby(['method', 'ref', 'fraction']):
        mu, lo, hi = t_interval(g['diff'])
        rows.append(dict(method=m, reference=r, fraction=f, n_seeds=len(g), diff_mean=mu, t_lo=lo, t_hi=hi,
                         diff_per_seed=' '.join(f"{d:+.3f}" for d in g['diff']),
                         seeds_ci_excluding_0=int(((g.lo > 0) | (g.hi < 0)).sum()), auc=g.auc.mean(), auc_ref=g.auc_ref.mean()))
    return pd.DataFrame(rows)

def k_available(df, labels):
    "Per label, the training patients with a positive and with a negative image: the largest k `few_shot` can honour is the smallest."
    from medcl_nb.data.splits import patient_label_status
    pos, neg = patient_label_status(df[df.split == 'train'], labels)
    counts = {l: dict(positive=int(np.asarray(pos[l]).sum()), negative=int(np.asarray(neg[l]).sum())) for l in labels}
    return dict(per_label=counts, largest_k=min(min(c.values()) for c in counts.values()))

def few_shot_means(fs):
    "Mean AUC over labels per encoder, k and draw, then its mean and sd over draws."
    g = fs.groupby(['encoder', 'k', 'draw']).agg(auc=('auc', 'mean'), n_train_patients=('n_train_patients', 'first'))
    return g.groupby(['encoder', 'k']).agg(auc=('auc', 'mean'), sd_draws=('auc', 'std'), n_train_patients=('n_train_patients', 'mean')).reset_index()

def shot_comparison(fs, method, k, ref, k_ref):
    "`method` at k shots minus `ref` at k_ref shots, per seed (mean over draws and labels), and over seeds with a t-interval."
    m = few_shot_means(fs).set_index(['encoder', 'k'])
    rows = []
    for n in m.index.get_level_values(0).unique():
        base, _, s = n.rpartition('_s')
        if base == method and (f'{ref}_s{s}', k_ref) in m.index and (n, k) in m.index:
            a, b = m.loc[(n, k)], m.loc[(f'{ref}_s{s}', k_ref)]
            rows.append(dict(seed=int(s), auc=a.auc, sd_draws=a.sd_draws, n_patients=a.n_train_patients,
                             auc_ref=b.auc, sd_draws_ref=b.sd_draws, n_patients_ref=b.n_train_patients, diff=a.auc - b.auc))
    if not rows: return None
    t = pd.DataFrame(rows)
    mu, lo, hi = t_interval(t['diff'])
    t = pd.concat([t, pd.DataFrame([dict(seed='mean', auc=t.auc.mean(), auc_ref=t.auc_ref.mean(), diff=mu, t_lo=lo, t_hi=hi)])], ignore_index=True)
    return t.assign(comparison=f"{method} {k}-shot vs {ref} {k_ref}-shot")

def print_tables(vs_random, vs_moco, fs, histories, vs_igcl=None, vs_convirt=None, seeds=None, available=None, shots=None):
    mean = lambda t: t[t.label == 'mean']
    print("\nLinear probe, mean AUC over labels; difference to the random encoder [95% paired patient-bootstrap CI]")
    for (enc, f), r in mean(vs_random).set_index(['encoder', 'fraction']).sort_index().iterrows():
        print(f"{enc:>22} {f:>6g} {r.n_train_patients:>6.1f} pts  AUC {r.auc:.3f}  vs random {r.auc_ref:.3f}: {r['diff']:+.3f} [{r.lo:+.3f}, {r.hi:+.3f}]")
    if vs_moco is not None:
        print("\nIGCL and ConVIRT runs against MoCo of the same pretraining seed")
        for (enc, f), r in mean(vs_moco).set_index(['encoder', 'fraction']).sort_index().iterrows():
            print(f"{enc:>22} {f:>6g}  AUC {r.auc:.3f} vs {r.reference} {r.auc_ref:.3f}: {r['diff']:+.3f} [{r.lo:+.3f}, {r.hi:+.3f}]")
    if vs_igcl is not None:
        print("\nAblations against IGCL (components, padding mask, max pooling) of the same pretraining seed")
        for (enc, f), r in mean(vs_igcl).set_index(['encoder', 'fraction']).sort_index().iterrows():
            print(f"{enc:>22} {f:>6g}  AUC {r.auc:.3f} vs {r.reference} {r.auc_ref:.3f}: {r['diff']:+.3f} [{r.lo:+.3f}, {r.hi:+.3f}]")
    if vs_convirt is not None:
        print("\nIGCL against ConVIRT of the same pretraining seed (image-graph vs image-text)")
        for (enc, f), r in mean(vs_convirt).set_index(['encoder', 'fraction']).sort_index().iterrows():
            print(f"{enc:>22} {f:>6g}  AUC {r.auc:.3f} vs {r.reference} {r.auc_ref:.3f}: {r['diff']:+.3f} [{r.lo:+.3f}, {r.hi:+.3f}]")
    if seeds is not None and len(seeds):
        print("\nOver pretraining seeds: mean of the same-seed differences (mean AUC over labels), 95% t-interval over seeds "
              "(n - 1 degrees of freedom); per-seed differences; seeds whose own bootstrap CI excludes 0")
        for _, r in seeds.sort_values(['reference', 'method', 'fraction']).iterrows():
            print(f"{r.method:>18} vs {r.reference:<8} {r.fraction:>6g}  n={r.n_seeds}  {r.diff_mean:+.3f} [{r.t_lo:+.3f}, {r.t_hi:+.3f}]"
                  f"  per seed {r.diff_per_seed}  ({r.seeds_ci_excluding_0} of {r.n_seeds} CIs exclude 0)")
    if available is not None:
        print(f"\nFew-shot pools: training patients with a positive / a negative image per label: "
              + ', '.join(f"{l} {c['positive']}/{c['negative']}" for l, c in available['per_label'].items())
              + f"; the largest k every label allows: {available['largest_k']}")
    if shots is not None:
        print(f"\n{shots.comparison.iloc[0]}: mean AUC over labels and draws (sd over draws), difference; over seeds with a 95% t-interval")
        print(shots.drop(columns='comparison').round(3).to_string(index=False))
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
