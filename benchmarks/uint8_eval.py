"""How much do features and linear-probe AUCs move when evaluation reads the shared uint8 store (x/255, rounded to 8 bits
after resizing) instead of the float images `load_images` gave before? Same encoder, same BatchNorm statistics, same
patients and probe; only the input's quantization differs.

    PYTHONPATH=. python benchmarks/uint8_eval.py [--data data_samples] [--size 64] [--epochs 1]
"""
import argparse, time
import numpy as np, torch

def main():
    p = argparse.ArgumentParser()
    p.add_argument('--data', default='data_samples'); p.add_argument('--size', type=int, default=64)
    p.add_argument('--epochs', type=int, default=1); p.add_argument('--seed', type=int, default=0)
    a = p.parse_args()
    torch.set_num_threads(1)
    from medcl_nb.experiment import find_dataset, prepare_splits, choose_labels, random_baseline, pretrain
    from medcl_nb.evaluation import load_images, extract_features, linear_probe
    from medcl_nb.data.cache import image_store
    df, source = find_dataset(a.data)
    df = prepare_splits(df, seed=a.seed)[0].reset_index(drop=True)
    labels, _ = choose_labels(df)
    t = time.time()
    as_float = load_images(df, a.size)
    store, _ = image_store(df, a.size, cache='ram')
    pix = (store.float() / 255 - as_float).abs()
    print(f"{source}: {len(df)} images at {a.size} px, labels {labels}; pixels: max |uint8/255 - float| = {pix.max():.5f} "
          f"(1/510 = {1/510:.5f}), mean {pix.mean():.5f}")
    train = torch.from_numpy(np.array(df.split == 'train'))
    encoders = {'random': random_baseline('resnet18', as_float[train], a.seed, 'cpu')}
    if a.epochs:
        encoders['moco'], _ = pretrain(df, 'moco', epochs=a.epochs, size=a.size, device='cpu', seed=a.seed, progress=False, queue_size=256)
    for name, enc in encoders.items():
        f_float, f_u8 = extract_features(enc, as_float), extract_features(enc, store)
        rel = np.linalg.norm(f_u8 - f_float, axis=1) / np.linalg.norm(f_float, axis=1)
        auc = {}
        for kind, f in (('float', f_float), ('uint8', f_u8)):
            m = linear_probe(f, df, labels, (0.1, 1.0), draws=3, seed=a.seed).metrics
            auc[kind] = m.groupby('fraction').auc.mean()
        d = auc['uint8'] - auc['float']
        print(f"{name:7s} features: relative change median {np.median(rel):.2e}, max {rel.max():.2e}; mean test AUC float -> uint8: "
              + ', '.join(f"fraction {fr}: {auc['float'][fr]:.4f} -> {auc['uint8'][fr]:.4f} ({d[fr]:+.4f})" for fr in d.index))
    print(f"({time.time() - t:.0f} s)")

if __name__ == '__main__': main()
