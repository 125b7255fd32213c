"""Data loading: does the two-view contrastive loader keep up with a ResNet18 step?

Prints source images/s of `contrastive_dls(..., two_views=True)` alone (preloaded uint8 images, and decoding
every image each epoch) and of a ResNet18 (1 input channel) forward+backward step on both views, at 64x64, and
their ratio. Ratios are what matter: absolute numbers depend on the machine.

    python benchmarks/bench_loader.py [--root data_samples/cxr] [--n 2000] [--bs 64] [--size 64] [--threads 2] [--device cpu]

With --root, the images of that MIMIC-CXR-JPG-layout folder are used; without it, n toy PNGs in a temp folder.
"""
import argparse, tempfile, time
from pathlib import Path
import numpy as np, pandas as pd, torch, torchvision
from PIL import Image
from medcl_nb.data.blocks import contrastive_dls, loader_images_per_s


def resnet18_1ch():
    "torchvision's ResNet18 with a single-channel stem, randomly initialized (no download)."
    m = torchvision.models.resnet18(weights=None, num_classes=128)
    m.conv1 = torch.nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
    return m


def model_images_per_s(model, bs, size, device, n_steps=5):
    "Source images/s of a contrastive forward+backward step: the model sees both views (2*bs images)."
    model = model.to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x = torch.rand(2 * bs, 1, size, size, device=device)
    def step():
        opt.zero_grad(); model(x).pow(2).mean().backward(); opt.step()
    step()
    if device.startswith('cuda'): torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(n_steps): step()
    if device.startswith('cuda'): torch.cuda.synchronize()
    return n_steps * bs / (time.perf_counter() - t0)


def toy_pngs(n, size, folder):
    "n random-blob grayscale PNGs (two images per patient) and their schema rows."
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size] / size
    rows = []
    for i in range(n):
        cx, cy, r = rng.uniform(0.3, 0.7, 3)
        img = 0.2 + 0.6 * (((xx - cx) ** 2 + (yy - cy) ** 2) < (0.3 * r) ** 2) + 0.05 * rng.standard_normal((size, size))
        f = Path(folder) / f"{i}.png"
        Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8)).save(f)
        rows.append(dict(path=str(f), patient_id=f"p{i // 2}"))
    return pd.DataFrame(rows)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--n', type=int, default=2000); p.add_argument('--bs', type=int, default=64)
    p.add_argument('--size', type=int, default=64); p.add_argument('--threads', type=int, default=2)
    p.add_argument('--device', default='cpu'); p.add_argument('--root', default=None)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    with tempfile.TemporaryDirectory() as d:
        if a.root:
            from medcl_nb.data.readers import read_mimic_cxr
            df = read_mimic_cxr(a.root)
            a.n = len(df)
        else: df = toy_pngs(a.n, a.size, d)
        t0 = time.perf_counter()
        dls = contrastive_dls(df, size=a.size, bs=a.bs, two_views=True, device=a.device)
        preload_s = time.perf_counter() - t0
        loader = loader_images_per_s(dls.train, n_batches=20)
        lazy = loader_images_per_s(contrastive_dls(df, size=a.size, bs=a.bs, two_views=True, device=a.device,
                                                   preload=False).train, n_batches=5)
    model = model_images_per_s(resnet18_1ch(), a.bs, a.size, a.device)
    print(f"device {a.device}, {a.threads} threads, {a.n} images ({a.root or 'toy PNGs'}) at {a.size}x{a.size}, bs {a.bs}")
    print(f"preload (train+valid) once:    {preload_s:6.1f} s")
    print(f"two-view loader (preloaded):   {loader:8,.0f} images/s")
    print(f"two-view loader (decode each): {lazy:8,.0f} images/s")
    print(f"ResNet18 fwd+bwd, both views:  {model:8,.0f} images/s")
    print(f"loader / model (preloaded):    {loader / model:8.1f}x")
    print(f"loader / model (decode each):  {lazy / model:8.1f}x")


if __name__ == '__main__': main()
