"""medcl_nb.graph against torch_geometric (a dev extra, used here only to check ours) and on RadGraph's real formats."""
import math
from pathlib import Path
import pytest, torch
from medcl_nb.graph import RGCNConv, GraphEncoder, radgraph_to_tensors, NODE_TYPES, RELATION_TYPES
from medcl_nb.data.readers import read_radgraph, short_radgraph_label, RADGRAPH_RELATIONS
from medcl_nb.data.blocks import collate_graphs

try: import torch_geometric.nn as pyg_nn
except ImportError: pyg_nn = None
needs_pyg = pytest.mark.skipif(pyg_nn is None, reason='torch_geometric is a dev extra: pip install -e ".[dev]"')
ROOT = Path(__file__).parent.parent
FIXTURES = Path(__file__).parent/'fixtures'/'radgraph'


def _graph(n, e, R, F, seed, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, F, generator=g, dtype=dtype), torch.randint(0, n, (2, e), generator=g),
            torch.randint(0, R, (e,), generator=g))


def _pair(F_in, F_out, R, seed, bias=True):
    "Our RGCNConv and torch_geometric's with the same weights (and a non-zero bias)."
    torch.manual_seed(seed)
    ours = RGCNConv(F_in, F_out, R, bias=bias).double()
    theirs = pyg_nn.RGCNConv(F_in, F_out, R, aggr='mean', bias=bias).double()
    with torch.no_grad():
        if bias: ours.bias.normal_()
        for name, p in theirs.named_parameters(): p.copy_(getattr(ours, name))
    return ours, theirs


@pytest.mark.parametrize('n,e,R,F_in,F_out,seed', [(1, 0, 1, 3, 2, 0), (5, 12, 2, 4, 3, 1), (30, 90, 8, 16, 8, 2),
                                                   (64, 20, 3, 5, 7, 3), (200, 600, 6, 32, 16, 4)])
@pytest.mark.parametrize('bias', [True, False])
@needs_pyg
def test_rgcn_matches_torch_geometric(n, e, R, F_in, F_out, seed, bias):
    ours, theirs = _pair(F_in, F_out, R, seed, bias)
    assert {k: tuple(v.shape) for k, v in ours.named_parameters()} == {k: tuple(v.shape) for k, v in theirs.named_parameters()}
    x, ei, et = _graph(n, e, R, F_in, seed)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    out_a, out_b = ours(xa, ei, et), theirs(xb, ei, et)
    torch.testing.assert_close(out_a, out_b, rtol=0, atol=1e-10)
    upstream = torch.randn_like(out_a)
    (out_a * upstream).sum().backward(); (out_b * upstream).sum().backward()
    torch.testing.assert_close(xa.grad, xb.grad, rtol=0, atol=1e-10)
    for name, p in theirs.named_parameters():
        torch.testing.assert_close(getattr(ours, name).grad, p.grad, rtol=0, atol=1e-10)


@needs_pyg
def test_rgcn_matches_torch_geometric_on_a_batch_of_radgraph_sized_graphs():
    "64 graphs of 20-60 nodes, 8 relations, float32: the benchmark's setting."
    g = torch.Generator().manual_seed(0)
    sizes = torch.randint(20, 61, (64,), generator=g)
    offsets = torch.cumsum(sizes, 0) - sizes
    ei = torch.cat([torch.randint(0, int(n), (2, int(n)), generator=g) + o for n, o in zip(sizes, offsets)], 1)
    et = torch.randint(0, 8, (ei.shape[1],), generator=g)
    x = torch.randn(int(sizes.sum()), 32, generator=g)
    ours, theirs = _pair(32, 32, 8, 0)
    ours, theirs = ours.float(), theirs.float()
    torch.testing.assert_close(ours(x, ei, et), theirs(x, ei, et), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('name', ['train.json', 'test.json', 'inference_xl.json'])
def test_real_radgraph_formats_become_graphs(name):
    graphs = read_radgraph(FIXTURES/name)
    vocab = {}
    tokenize = lambda text: [vocab.setdefault(w, len(vocab) + 1) for w in text.lower().split()]
    batch = []
    for entry in graphs.values():
        t = radgraph_to_tensors(entry, tokenize)
        ents = list(entry['entities'].values())
        assert t['x'][:len(ents), 0].tolist() == [NODE_TYPES.index(short_radgraph_label(e['label'])) for e in ents]
        forward = t['edge_type'] < len(RADGRAPH_RELATIONS)
        assert int(forward.sum()) == sum(len(e['relations']) for e in ents)
        assert bool((t['edge_type'] < len(RELATION_TYPES)).all())
        batch.append(t)
    enc = GraphEncoder(len(vocab) + 1, token_dim=8, hidden=16, out_dim=4).eval()
    with torch.no_grad(): z = enc(collate_graphs(batch))
    assert z.shape == (len(batch), 4) and bool(torch.isfinite(z).all())


def test_empty_report_policy():
    empty = radgraph_to_tensors({'entities': {}}, lambda s: [1])
    assert NODE_TYPES[int(empty['x'][0, 0])] == 'empty' and empty['edge_index'].shape == (2, 0)
    with pytest.raises(ValueError, match='no entities'): radgraph_to_tensors({'entities': {}}, lambda s: [1], empty='raise')
    enc = GraphEncoder(4, token_dim=4, hidden=8, out_dim=4).eval()
    with torch.no_grad(): assert bool(torch.isfinite(enc(collate_graphs([empty, empty]))).all())


@pytest.mark.skipif(not (ROOT/'data_samples'/'cxr'/'radgraph.json').is_file(), reason='data_samples/cxr not generated (medcl_samples)')
def test_igcl_is_a_method_of_medcl_experiment(tmp_path):
    "`--methods ... igcl`: IGCL pretrains through the registry (its own lr, the run's temperature as its initial one) and is probed beside random init."
    import medcl_nb.experiment as ex
    assert ex.default_lr('igcl') == 1e-3
    assert ex.parse_experiment_args(['--data', str(ROOT/'data_samples'), '--methods', 'moco', 'convirt', 'igcl']).methods == ['moco', 'convirt', 'igcl']
    report = ex.run_experiment(ROOT/'data_samples', methods=['igcl'], epochs=1, size=32, max_patients=80, draws=1, boot=20, fractions=(1.0,),
                               few_shot_k=(), out=tmp_path, device='cpu', progress=False)
    assert set(report['encoders']) == {'igcl', 'random'} and report['config']['lrs'] == {'igcl': 1e-3}
    history = report['pretraining']['methods']['igcl']['history']
    assert len(history) == 1 and {'train_loss', 'valid_loss', 'logit_scale'} <= set(history[0])
    assert all(math.isfinite(v) for v in history[0].values())
    assert 1 < history[0]['logit_scale'] <= 100     # started at 1/0.1 (the run's temperature), clamped at 100
    mean = [s for s in report['linear_eval']['summary'] if s['label'] == 'mean']
    assert {(s['encoder'], s['reference']) for s in mean} == {('igcl', 'random')}
    assert all(s['lo'] <= s['diff'] <= s['hi'] for s in mean)
