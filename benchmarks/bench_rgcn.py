"""Our RGCNConv (medcl_nb.graph) against torch_geometric's, forward + backward on a batch of RadGraph-sized graphs.

    python benchmarks/bench_rgcn.py                      # CPU, 64 graphs of 20-60 nodes, 3 and 8 relations, 128 and 512 channels
    python benchmarks/bench_rgcn.py --device cuda        # on a GPU: peak memory from torch.cuda.max_memory_allocated

Prints, per setting, the time of one forward+backward (best of --repeats, the two layers interleaved so that a
shared machine's load hits both alike), ours / torch_geometric, and the peak memory of one step: on a GPU from
torch.cuda.max_memory_allocated, on the CPU the largest growth of the heap in use (glibc's mallinfo2), sampled after
every torch op of the forward and backward passes. torch_geometric is a dev extra; it is needed here.
"""
import argparse, ctypes, json, sys, time
import torch
from torch.utils._python_dispatch import TorchDispatchMode

def radgraph_batch(bs, min_nodes, max_nodes, relations, channels, seed=0, device='cpu'):
    "`bs` graphs of min..max nodes, about one relation per node and its reverse (as radgraph_to_tensors makes), flattened."
    g = torch.Generator().manual_seed(seed)
    sizes = torch.randint(min_nodes, max_nodes + 1, (bs,), generator=g)
    offsets = torch.cumsum(sizes, 0) - sizes
    edges, types = [], []
    half = max(relations // 2, 1)
    for n, o in zip(sizes.tolist(), offsets.tolist()):
        s, t = torch.randint(0, n, (n,), generator=g), torch.randint(0, n, (n,), generator=g)
        r = torch.randint(0, half, (n,), generator=g)
        edges.append(torch.stack([torch.cat([s, t]), torch.cat([t, s])]) + o)
        types.append(torch.cat([r, (r + half) % relations]))
    x = torch.randn(int(sizes.sum()), channels, generator=g)
    return x.to(device), torch.cat(edges, 1).to(device), torch.cat(types).to(device)

def make_layer(impl, channels, relations, device):
    if impl == 'ours':
        from medcl_nb.graph import RGCNConv
        return RGCNConv(channels, channels, relations).to(device)
    from torch_geometric.nn import RGCNConv
    return RGCNConv(channels, channels, relations, aggr='mean').to(device)

def step(layer, x, ei, et):
    xx = x.detach().requires_grad_()
    layer(xx, ei, et).square().mean().backward()

def sync(device):
    if torch.device(device).type == 'cuda': torch.cuda.synchronize()

def time_pair(layers, batch, repeats, inner, device):
    "Best time per step of each layer, measured in alternation."
    best = {k: float('inf') for k in layers}
    for k, l in layers.items(): step(l, *batch)                  # warm-up
    for _ in range(repeats):
        for k, l in layers.items():
            sync(device); t = time.perf_counter()
            for _ in range(inner): step(l, *batch)
            sync(device); best[k] = min(best[k], (time.perf_counter() - t) / inner)
    return best

def peak_memory_cuda(layer, batch):
    torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats(); base = torch.cuda.memory_allocated()
    step(layer, *batch); torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() - base

class _Mallinfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ('arena', 'ordblks', 'smblks', 'hblks', 'hblkhd', 'usmblks', 'fsmblks', 'uordblks', 'fordblks', 'keepcost')]

def heap_in_use():
    "Bytes glibc's malloc has handed out and not taken back (small blocks + mmapped chunks); None without glibc >= 2.33."
    try: libc = ctypes.CDLL('libc.so.6'); libc.mallinfo2.restype = _Mallinfo2
    except (OSError, AttributeError): return None
    m = libc.mallinfo2()
    return m.uordblks + m.hblkhd

class HeapPeak(TorchDispatchMode):
    "The largest heap in use after any torch op (forward and backward) while the mode is on."
    def __init__(self): super().__init__(); self.peak = 0
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.peak = max(self.peak, heap_in_use())
        return out

def peak_memory_cpu(layer, batch):
    "Peak growth of the CPU heap during one step, sampled after every torch op (glibc's mallinfo2)."
    if heap_in_use() is None: return float('nan')
    base, mode = heap_in_use(), HeapPeak()
    with mode: step(layer, *batch)
    return mode.peak - base

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--device', default='cpu'); p.add_argument('--bs', type=int, default=64)
    p.add_argument('--min-nodes', type=int, default=20); p.add_argument('--max-nodes', type=int, default=60)
    p.add_argument('--relations', type=int, nargs='+', default=[3, 8]); p.add_argument('--channels', type=int, nargs='+', default=[128, 512])
    p.add_argument('--repeats', type=int, default=5); p.add_argument('--inner', type=int, default=3)
    p.add_argument('--threads', type=int, default=2); p.add_argument('--json', default=None, help="also write the rows here")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    rows = []
    print(f"{'R':>3} {'F':>5} {'nodes':>6} {'edges':>6} {'ours ms':>9} {'pyg ms':>9} {'ratio':>6} {'ours MB':>8} {'pyg MB':>8} {'max |diff|':>10}")
    for R in a.relations:
        for F in a.channels:
            batch = radgraph_batch(a.bs, a.min_nodes, a.max_nodes, R, F, device=a.device)
            torch.manual_seed(0)
            layers = {'ours': make_layer('ours', F, R, a.device), 'pyg': make_layer('pyg', F, R, a.device)}
            with torch.no_grad():
                for name, prm in layers['pyg'].named_parameters(): prm.copy_(getattr(layers['ours'], name))
                diff = (layers['ours'](*batch) - layers['pyg'](*batch)).abs().max().item()
            t = time_pair(layers, batch, a.repeats, a.inner, a.device)
            if torch.device(a.device).type == 'cuda': mem = {k: peak_memory_cuda(l, batch) for k, l in layers.items()}
            else: mem = {k: peak_memory_cpu(l, batch) for k, l in layers.items()}
            row = dict(relations=R, channels=F, nodes=batch[0].shape[0], edges=batch[1].shape[1], ours_ms=1e3 * t['ours'],
                       pyg_ms=1e3 * t['pyg'], ratio=t['ours'] / t['pyg'], ours_mb=mem['ours'] / 2**20, pyg_mb=mem['pyg'] / 2**20, max_diff=diff)
            rows.append(row)
            print(f"{R:>3} {F:>5} {row['nodes']:>6} {row['edges']:>6} {row['ours_ms']:>9.1f} {row['pyg_ms']:>9.1f} {row['ratio']:>6.2f} "
                  f"{row['ours_mb']:>8.1f} {row['pyg_mb']:>8.1f} {diff:>10.1e}", flush=True)
    dev = torch.cuda.get_device_name() if torch.device(a.device).type == 'cuda' else f'cpu, {a.threads} threads'
    import torch_geometric
    print(f"device: {dev}; torch {torch.__version__}, torch_geometric {torch_geometric.__version__}; forward+backward of one layer, "
          f"batch of {a.bs} graphs with {a.min_nodes}-{a.max_nodes} nodes")
    if a.json: open(a.json, 'w').write(json.dumps(rows, indent=1))
    return rows

if __name__ == '__main__': main()
