"""Distributed contrastive training with real processes (notebook 17): 2 ranks, gloo, CPU, localhost.

Each test starts 2 processes with torch.multiprocessing, which join a gloo process group on a free port with a
2-minute collective timeout (a bug fails instead of hanging) and leave it when done; rank results come back through
files in pytest's tmp_path. The one-process references are computed in the test process itself. The processes are
forked from a forkserver that has imported torch, fastai and medcl_nb once (and never ran a torch kernel, so forking
is safe): without it each of the 19 processes spent seconds of CPU importing the same libraries.

    python -m pytest tests/test_distributed.py -v
"""
import os, socket, tempfile, warnings
from datetime import timedelta
from pathlib import Path
import medcl_nb  # noqa: F401  (first: its warning filter)
import pytest, torch, torch.nn as nn, torch.nn.functional as F
import torch.distributed as dist, torch.multiprocessing as mp
from fastai.callback.core import Callback
from fastai.torch_core import set_seed

WORLD = 2
pytestmark = pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available")

def _free_port()->int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

def _entry(rank, world, port, fn, out, args):
    "One rank: the environment torchrun would set, a gloo group, `fn(rank, out, *args)`, then leave the group."
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_WORLD_SIZE=str(world), OMP_NUM_THREADS='1')
    torch.set_num_threads(1)
    warnings.simplefilter('ignore')
    dist.init_process_group('gloo', rank=rank, world_size=world, timeout=timedelta(seconds=120))
    try: fn(rank, Path(out), *args)
    finally: dist.destroy_process_group()

def run_ranks(fn, out, *args, world=WORLD):
    "Run `fn(rank, out, *args)` in `world` processes; raises if any of them fails."
    mp.get_context('forkserver').set_forkserver_preload(['medcl_nb.learner', 'fastai.distributed', __name__])
    mp.start_processes(_entry, args=(world, _free_port(), fn, str(out), args), nprocs=world, join=True,
                       start_method='forkserver')

def load(path): return torch.load(path, weights_only=True)

# ---------------------------------------------------------------- NT-Xent through DDP, float64
def small_simclr(seed=0):
    from medcl_nb.simclr import SimCLRModel
    torch.manual_seed(seed)
    enc = nn.Sequential(nn.Conv2d(1, 8, 3), nn.GroupNorm(2, 8), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    return SimCLRModel(enc, nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 8))).double()

def views(n=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(n, 1, 8, 8, generator=g, dtype=torch.float64) for _ in range(2)]

def _ntxent_rank(rank, out):
    from torch.nn.parallel import DistributedDataParallel as DDP
    from medcl_nb.losses import NTXent
    from medcl_nb.distributed import differentiable_all_gather, all_gather_no_grad
    def no_grad_gather(z):                              # the common mistake: others' rows detached, own rows kept
        b, others = len(z), all_gather_no_grad(z)
        return torch.cat([others[:rank * b], z, others[(rank + 1) * b:]])
    x1, x2 = views()
    b = len(x1) // WORLD
    for name, gather in (('differentiable', differentiable_all_gather), ('no_grad', no_grad_gather)):
        model = DDP(small_simclr())
        z1, z2 = model(x1[rank * b:(rank + 1) * b], x2[rank * b:(rank + 1) * b])
        loss = NTXent(0.1)(gather(z1), gather(z2))      # the loss of the global batch, on every rank
        loss.backward()
        torch.save({'loss': loss.detach(), 'grads': [p.grad for p in model.parameters()]}, out/f'{name}{rank}.pt')

def test_ntxent_two_ranks_equal_one_process(tmp_path):
    from medcl_nb.losses import NTXent
    model = small_simclr()
    loss = NTXent(0.1)(*model(*views()))
    loss.backward()
    ref = torch.cat([p.grad.flatten() for p in model.parameters()])
    run_ranks(_ntxent_rank, tmp_path)
    for r in range(WORLD):
        res = load(tmp_path/f'differentiable{r}.pt')
        grads = torch.cat([g.flatten() for g in res['grads']])
        assert grads.shape == ref.shape
        torch.testing.assert_close(res['loss'], loss.detach(), rtol=0, atol=1e-12)
        torch.testing.assert_close(grads, ref, rtol=0, atol=1e-12)          # every parameter's gradient, exact
        wrong = torch.cat([g.flatten() for g in load(tmp_path/f'no_grad{r}.pt')['grads']])
        assert (wrong - ref).abs().max() > 1e-3 * ref.abs().max()           # a no-grad gather: wrong gradients
        torch.testing.assert_close(wrong, ref / WORLD, rtol=0, atol=1e-12)   # (here: exactly 1/W of them, notebook 17)

# ---------------------------------------------------------------- simclr_learner under learn.distrib_ctx()
def blob_items(n=16, size=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [(x,) for x in torch.rand(n, 1, size, size, generator=g)]

class RecordFirstStep(Callback):
    "The loss and the gradients (after DDP's average) of the first optimizer step."
    order = 50
    def before_fit(self): self.done = False
    def before_step(self):
        if self.done: return
        self.done, self.step_loss = True, self.learn.loss.detach().clone()   # not `self.loss`: fastai warns it shadows learn.loss
        self.grads = [p.grad.detach().clone() for p in self.learn.model.parameters() if p.requires_grad]

def identity_view(x): return x

def simclr_for_test(items, bs, path):
    from fastai.data.core import DataLoaders
    from fastai.data.load import DataLoader
    from fastai.optimizer import SGD
    from medcl_nb.simclr import simclr_learner
    from medcl_nb.models import ProjectionHead
    set_seed(0)
    dls = DataLoaders(DataLoader(items, bs=bs, shuffle=False, drop_last=True), DataLoader(items[:bs], bs=bs))
    learn = simclr_learner(dls, 'resnet18', norm='group', aug=identity_view, opt_func=SGD, path=path,
                           cbs=[RecordFirstStep()])
    torch.manual_seed(1)   # a head without BatchNorm: per-rank BN statistics are not the global batch's (SyncBN is, on GPUs)
    learn.model.head = ProjectionHead(512, 512, 128, n_layers=2, bn=False)
    return learn

def _simclr_learner_rank(rank, out):
    learn = simclr_for_test(blob_items(), bs=4, path=out)     # rank r gets items[8r:8r+8]: first batch items[8r:8r+4]
    with learn.no_bar(), learn.no_logging(), learn.distrib_ctx(sync_bn=False, cpu=True):
        learn.fit(1, 1e-2)
    rec = learn.record_first_step
    torch.save({'loss': rec.step_loss, 'grads': rec.grads}, out/f'simclr{rank}.pt')
    refused = ''
    try:
        with learn.no_bar(), learn.no_logging(), learn.distrib_ctx(cpu=True): learn.fit(1, 1e-2)  # sync_bn=True on CPU
    except ValueError as e: refused = str(e)
    torch.save({'refused': refused}, out/f'refused{rank}.pt')

def test_simclr_learner_two_ranks_equal_one_process(tmp_path):
    items = blob_items()
    one = simclr_for_test(items[0:4] + items[8:12], bs=8, path=tmp_path)   # the same 8 images in one batch
    with one.no_bar(), one.no_logging(): one.fit(1, 1e-2)
    run_ranks(_simclr_learner_rank, tmp_path)
    ref = one.record_first_step
    for r in range(WORLD):
        res = load(tmp_path/f'simclr{r}.pt')
        torch.testing.assert_close(res['loss'], ref.step_loss, rtol=1e-5, atol=1e-6)
        assert len(res['grads']) == len(ref.grads)
        for g, g_ref in zip(res['grads'], ref.grads):
            assert g.shape == g_ref.shape
            torch.testing.assert_close(g, g_ref, rtol=1e-4, atol=1e-6)
        assert 'sync_bn=True' in load(tmp_path/f'refused{r}.pt')['refused']

def _one_rank(rank, out):
    learn = simclr_for_test(blob_items(), bs=8, path=out)
    with learn.no_bar(), learn.no_logging(), learn.distrib_ctx(sync_bn=False, cpu=True): learn.fit(1, 1e-2)
    rec = learn.record_first_step
    torch.save({'loss': rec.step_loss, 'grads': rec.grads, 'model': type(learn.model).__name__}, out/'one_rank.pt')

def test_distrib_ctx_with_one_process(tmp_path):
    "torchrun --nproc_per_node 1: Accelerate does not wrap the model; the fit runs through and matches the plain learner."
    plain = simclr_for_test(blob_items(), bs=8, path=tmp_path)
    with plain.no_bar(), plain.no_logging(): plain.fit(1, 1e-2)
    run_ranks(_one_rank, tmp_path, world=1)
    res = load(tmp_path/'one_rank.pt')
    assert res['model'] == 'SimCLRModel'                                # unwrapped after fit
    torch.testing.assert_close(res['loss'], plain.record_first_step.step_loss)
    for g, g_ref in zip(res['grads'], plain.record_first_step.grads): torch.testing.assert_close(g, g_ref)

# ---------------------------------------------------------------- a CLIP-style learner: igcl_learner (ConVIRT, LoVT, EBCL: the same hook)
VOCAB = 12

def graph_items(n=16, size=16, seed=0):
    "n (image, graph, index) triples: random images and random small graphs in `radgraph_to_tensors`' format."
    from medcl_nb.graph import NODE_TYPES, RELATION_TYPES
    g = torch.Generator().manual_seed(seed)
    def graph(n_nodes):
        types = torch.randint(0, len(NODE_TYPES), (n_nodes, 1), generator=g)
        tokens = torch.randint(1, VOCAB, (n_nodes, 3), generator=g)
        n_edges = 2 * n_nodes
        return dict(x=torch.cat([types, tokens], 1), edge_index=torch.randint(0, n_nodes, (2, n_edges), generator=g),
                    edge_type=torch.randint(0, len(RELATION_TYPES), (n_edges,), generator=g))
    return [(torch.rand(1, size, size, generator=g), graph(2 + i % 4), i) for i in range(n)]   # 2-5 nodes: padding differs

def igcl_for_test(items, bs, path):
    from fastai.data.core import DataLoaders
    from fastai.data.load import DataLoader
    from fastai.optimizer import SGD
    from medcl_nb.graph import igcl_learner, image_graph_batch
    from medcl_nb.models import ProjectionHead
    set_seed(0)
    dl = lambda its: DataLoader(its, bs=bs, shuffle=False, drop_last=True, create_batch=image_graph_batch)
    dls = DataLoaders(dl(items), dl(items[:bs]))
    dls.vocab_size = VOCAB
    learn = igcl_learner(dls, 'resnet18', norm='group', hidden=16, token_dim=8, proj_dim=8, opt_func=SGD, path=path,
                         cbs=[RecordFirstStep()])
    torch.manual_seed(1)   # heads without BatchNorm and no dropout: per-rank statistics and draws are not one process's
    learn.model.image_head = ProjectionHead(512, 512, 8, n_layers=2, bn=False)
    learn.model.graph_encoder.head = ProjectionHead(16, 16, 8, n_layers=2, bn=False)
    for m in learn.model.modules():
        if isinstance(m, nn.Dropout): m.p = 0.
        if isinstance(m, nn.MultiheadAttention): m.dropout = 0.
    return learn

def _igcl_rank(rank, out):
    learn = igcl_for_test(graph_items(), bs=4, path=out)          # rank r: items[8r:8r+8], first batch items[8r:8r+4]
    with learn.no_bar(), learn.no_logging(), learn.distrib_ctx(sync_bn=False, cpu=True): learn.fit(1, 1e-2)
    rec = learn.record_first_step
    torch.save({'loss': rec.step_loss, 'grads': rec.grads, 'names': [n for n, p in learn.model.named_parameters() if p.requires_grad]},
               out/f'igcl{rank}.pt')

def test_igcl_learner_two_ranks_equal_one_process(tmp_path):
    "CLIP's loss with a learned logit scale: 2 ranks x 4 pairs = 1 process x 8 pairs, loss and every gradient (the scale's too)."
    items = graph_items()
    one = igcl_for_test(items[0:4] + items[8:12], bs=8, path=tmp_path)
    with one.no_bar(), one.no_logging(): one.fit(1, 1e-2)
    run_ranks(_igcl_rank, tmp_path)
    ref = one.record_first_step
    names = [n for n, p in one.model.named_parameters() if p.requires_grad]
    for r in range(WORLD):
        res = load(tmp_path/f'igcl{r}.pt')
        assert res['names'] == names and 'logit_scale' in names
        torch.testing.assert_close(res['loss'], ref.step_loss, rtol=1e-5, atol=1e-6)
        for n, g, g_ref in zip(names, res['grads'], ref.grads):
            assert g.shape == g_ref.shape, n
            torch.testing.assert_close(g, g_ref, rtol=1e-4, atol=1e-6, msg=lambda m: f"{n}: {m}")
    # what the hook changes: a rank's loss over its own 4 pairs alone (the 4 pairs twice, bs 4) is another number
    half = igcl_for_test(items[0:4] * 2, bs=4, path=tmp_path)
    with half.no_bar(), half.no_logging(): half.fit(1, 1e-2)
    assert abs(half.record_first_step.step_loss.item() - ref.step_loss.item()) > 1e-3

# ---------------------------------------------------------------- shuffle-BN across ranks
def bn_key(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()).train()

def _shuffle_rank(rank, out):
    from medcl_nb.distributed import shuffle_across_ranks, unshuffle_across_ranks, all_gather_no_grad
    x = views(n=8, seed=1)[0].float()
    b = len(x) // WORLD
    torch.manual_seed(5)                                     # rank 0's permutation is the one all ranks use
    with torch.no_grad():
        y, undo = shuffle_across_ranks(x[rank * b:(rank + 1) * b])
        k = unshuffle_across_ranks(bn_key()(y), undo)
    torch.save({'keys': all_gather_no_grad(k)}, out/f'shuffle{rank}.pt')

def test_shuffle_bn_equals_split_batch_bn(tmp_path):
    from medcl_nb.learner import split_forward
    run_ranks(_shuffle_rank, tmp_path)
    x = views(n=8, seed=1)[0].float()
    torch.manual_seed(5); perm = torch.randperm(len(x))
    with torch.no_grad():
        expected = split_forward(bn_key(), x[perm], WORLD)[perm.argsort()]   # one device: a BN group per rank
        plain = bn_key()(x)
    for r in range(WORLD):
        keys = load(tmp_path/f'shuffle{r}.pt')['keys']
        assert keys.shape == expected.shape
        torch.testing.assert_close(keys, expected, rtol=1e-5, atol=1e-6)
    assert (keys - plain).abs().max() > 1e-3                 # and not one BN group over the global batch

# ---------------------------------------------------------------- moco_learner: identical queues
def moco_for_test(path, n=24, bs=4, K=20, seed=0, cbs=()):
    from fastai.data.core import DataLoaders
    from fastai.data.load import DataLoader
    from medcl_nb.learner import moco_learner
    set_seed(seed)
    items = blob_items(n=n, seed=seed)
    dls = DataLoaders(DataLoader(items, bs=bs, shuffle=False, drop_last=True), DataLoader(items[:8], bs=bs))
    return moco_learner(dls, 'resnet18', queue_size=K, momentum=0.9, proj_dim=16, path=path, cbs=list(cbs))

class RecordKeys(Callback):
    "This rank's keys of every training step."
    order = 50
    def before_fit(self): self.keys = []
    def after_loss(self):
        if self.training: self.keys.append(self.pred[1].detach().clone())

def _moco_rank(rank, out):
    from fastai.torch_core import get_model
    from medcl_nb.distributed import all_gather_no_grad
    learn = moco_for_test(out, cbs=[RecordKeys()])          # 12 images per rank: 3 steps of 4
    with learn.no_bar(), learn.no_logging(), learn.distrib_ctx(sync_bn=False, cpu=True):
        learn.fit(1, 1e-3)
    model = get_model(learn.model)
    steps = [all_gather_no_grad(k) for k in learn.record_keys.keys]    # each step's global batch of keys, rank order
    torch.save({'queue': model.queue.keys, 'ptr': model.queue.ptr, 'steps': steps,
                'key_params': [p.detach() for p in model.key.parameters()]}, out/f'moco{rank}.pt')

def test_moco_queues_identical(tmp_path):
    run_ranks(_moco_rank, tmp_path)
    r0, r1 = load(tmp_path/'moco0.pt'), load(tmp_path/'moco1.pt')
    assert torch.equal(r0['queue'], r1['queue']) and torch.equal(r0['ptr'], r1['ptr'])
    for a, b in zip(r0['key_params'], r1['key_params']): assert torch.equal(a, b)
    K, n_steps, global_bs = 20, 3, 4 * WORLD
    assert r0['ptr'].item() == n_steps * global_bs % K                 # the pointer advanced by the global batch
    written = F.normalize(torch.cat(r0['steps']), dim=1)               # 24 keys in the order they were enqueued
    assert written.shape == (n_steps * global_bs, 16)
    expected = written[-K:].roll(n_steps * global_bs % K, dims=0)      # the last K, wrapped at the pointer
    torch.testing.assert_close(r0['queue'], expected, rtol=1e-5, atol=1e-6)

# ---------------------------------------------------------------- resume a 2-process run
class SeedEachEpoch(Callback):
    "Seed all generators at the start of each training epoch (the same epoch gets the same draws in any run)."
    order = -20
    def before_train(self): set_seed(100 + self.epoch)

class RecordLosses(Callback):
    def before_fit(self): self.losses = []
    def after_loss(self):
        if self.training: self.losses.append(self.loss.item())

def _resume_rank(rank, out, phase):
    def learner(): return moco_for_test(out, n=16, K=10, cbs=[SeedEachEpoch(), RecordLosses()])
    def fit(learn, *args, **kwargs):
        with learn.no_bar(), learn.no_logging(), learn.distrib_ctx(sync_bn=False, cpu=True): learn.fit(*args, **kwargs)
    if phase == 'full':
        learn = learner(); fit(learn, 2, 1e-3)
        torch.save({'losses': learn.record_losses.losses}, out/f'full{rank}.pt')
    elif phase == 'first':
        learn = learner(); fit(learn, 1, 1e-3)
        learn.save('epoch1')                                 # rank 0 writes, the others return at once
    else:
        learn = learner().load('epoch1'); fit(learn, 2, 1e-3, start_epoch=1)
        fresh = learner(); fit(fresh, 2, 1e-3, start_epoch=1)     # the negative control: no checkpoint loaded
        torch.save({'losses': learn.record_losses.losses, 'fresh': fresh.record_losses.losses}, out/f'resumed{rank}.pt')

def test_resumed_two_process_run_continues(tmp_path):
    for phase in ('full', 'first', 'resumed'): run_ranks(_resume_rank, tmp_path, phase)
    for r in range(WORLD):
        full, res = load(tmp_path/f'full{r}.pt')['losses'], load(tmp_path/f'resumed{r}.pt')
        assert len(full) == 4 and len(res['losses']) == 2    # 8 images per rank: 2 steps per epoch
        torch.testing.assert_close(torch.tensor(res['losses']), torch.tensor(full[2:]), rtol=0, atol=1e-5)
        assert max(abs(a - b) for a, b in zip(res['fresh'], full[2:])) > 1e-3   # without the checkpoint: other losses
    one = moco_for_test(tmp_path, n=16, K=10).load('epoch1')  # rank 0's checkpoint on one device
    assert one.model.queue.ptr.item() == 2 * 4 * WORLD % 10
