"""Data at real scale (issue 17): a DICOM folder found by the main job, and `medcl_experiment --on-bad-image`
on a copy of data_samples/ with a truncated, a zero-byte and a missing image."""
import json, os, resource, shutil, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT/'tests'/'fixtures'
TINY = ['--epochs', '1', '--size', '32', '--max-patients', '60', '--draws', '1', '--boot', '20', '--fractions', '1.0',
        '--few-shot', '--bs', '16', '--device', 'cpu', '--no-progress']

def cli(*args, timeout=400):
    "The main job's entry point in a subprocess (as its console script runs it), one thread."
    code = ("import sys; sys.argv[0] = 'medcl_experiment'; "
            "from medcl_nb.experiment import medcl_experiment_cli; sys.exit(medcl_experiment_cli())")
    return subprocess.run([sys.executable, '-c', code, *map(str, args)], cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, 'MPLBACKEND': 'Agg', 'PYTHONPATH': str(ROOT), 'OMP_NUM_THREADS': '1'})

def test_find_dataset_reads_a_dicom_folder():
    from medcl_nb.experiment import find_dataset
    from medcl_nb.data.readers import check_schema, load_image
    df, source = find_dataset(FIXTURES/'dicom')                       # the default keeps frontal views (PA, AP)
    check_schema(df)
    assert 'labels.csv' in source and list(df.view) == ['PA', 'PA', 'AP']
    assert [load_image(p).shape for p in df.path] == [(16, 16)] * 3

@pytest.fixture(scope='module')
def broken_samples(tmp_path_factory):
    "data_samples/cxr copied, with three images of three patients the tiny run keeps: truncated, emptied, deleted."
    from medcl_nb.experiment import find_dataset, subsample_patients
    data = tmp_path_factory.mktemp('broken')/'data'
    shutil.copytree(ROOT/'data_samples'/'cxr', data/'cxr', ignore=shutil.ignore_patterns('reports', 'radgraph.json'))
    df, _ = find_dataset(data)
    kept = subsample_patients(df, 60, 0).drop_duplicates('patient_id')   # the patients --max-patients 60 --seed 0 keeps
    rows = kept.iloc[:3]
    truncated, empty, missing = map(Path, rows.path)
    truncated.write_bytes(truncated.read_bytes()[:len(truncated.read_bytes()) // 2])
    empty.write_bytes(b'')
    missing.unlink()
    return data, dict(zip(rows.path, rows.patient_id)), missing, len(subsample_patients(df, 60, 0))

def test_bad_images_stop_the_run_by_default(broken_samples, tmp_path):
    data, bad, missing, _ = broken_samples
    r = cli('--data', data, *TINY, '--out', tmp_path/'out', timeout=200)
    assert r.returncode == 2 and missing.name in r.stderr, r.stderr[-2000:]

def test_skip_drops_bad_images_before_splitting_and_reports_them(broken_samples, tmp_path):
    data, bad, missing, n_kept = broken_samples
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    r = cli('--data', data, *TINY, '--on-bad-image', 'skip', '--cache', tmp_path/'cache', '--out', tmp_path/'out')
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(f"--on-bad-image skip run: {after.ru_utime - before.ru_utime:.1f} s user + {after.ru_stime - before.ru_stime:.1f} s sys CPU")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert 'skipped 3 unreadable, empty or missing image(s) of 3 patient(s)' in r.stdout
    report = json.loads((tmp_path/'out'/'report.json').read_text())
    listed = report['dataset']['bad_images']
    assert {b['path']: b['patient_id'] for b in listed} == bad
    problems = {Path(b['path']).name: b['problem'] for b in listed}
    assert problems[missing.name] == 'missing' and sorted(problems.values()).count('empty (0 bytes)') == 1
    assert sum('cannot read image' in p for p in problems.values()) == 1            # the truncated one: the decoder's message
    assert report['config']['on_bad_image'] == 'skip'
    ds = report['dataset']
    assert ds['train']['images'] + ds['valid']['images'] + ds['test']['images'] == n_kept - 3
    assert 'memory-mapped from a disk cache' in ds['images'] and 'built' in ds['images']      # --cache DIR: the memmap store
    assert [f.suffix for f in (tmp_path/'cache').iterdir()] and {f.suffix for f in (tmp_path/'cache').iterdir()} == {'.npy', '.json'}

def test_pretraining_is_unchanged_when_given_the_shared_uint8_store():
    "pretrain(images=store) reads the same uint8 pixels its own loader would decode: the same encoder, bit for bit."
    import torch
    from medcl_nb.experiment import find_dataset, subsample_patients, prepare_splits, pretrain
    from medcl_nb.data.cache import image_store
    torch.set_num_threads(1)
    df, _ = find_dataset(ROOT/'data_samples')
    df = prepare_splits(subsample_patients(df, 24, 0), seed=0)[0].reset_index(drop=True)
    store, note = image_store(df, 32, cache='ram')
    kw = dict(method='moco', epochs=1, bs=16, size=32, device='cpu', seed=0, progress=False, queue_size=32)
    own, _ = pretrain(df, **kw)
    shared, _ = pretrain(df, images=store, **kw)
    a, b = own.state_dict(), shared.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

def test_random_baseline_reads_the_store_lazily_with_the_same_result():
    "BatchNorm calibration over `rows` of the store (no copy of the training images) equals calibration on the copied rows."
    import numpy as np, torch
    from medcl_nb.experiment import find_dataset, prepare_splits, random_baseline
    from medcl_nb.data.cache import image_store
    torch.set_num_threads(1)
    df, _ = find_dataset(ROOT/'data_samples')
    df = prepare_splits(df, seed=0)[0].reset_index(drop=True).iloc[:120]
    store, _ = image_store(df, 32, cache='ram')
    rows = np.flatnonzero((df.split == 'train').to_numpy())
    copied = random_baseline('resnet18', store[torch.as_tensor(rows)].float() / 255, 0, 'cpu').state_dict()
    lazy = random_baseline('resnet18', store, 0, 'cpu', rows=rows).state_dict()
    assert all(torch.equal(copied[k], lazy[k]) for k in copied)

def test_main_job_runs_on_a_dicom_folder(tmp_path):
    "data_samples' images of 60 patients written as MONOCHROME1 12-bit DICOM with a labels.csv: `medcl_experiment --data DIR` runs."
    import numpy as np, pandas as pd, pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, ComputedRadiographyImageStorage
    from medcl_nb.experiment import find_dataset, subsample_patients
    from medcl_nb.data.readers import load_image, CHEXPERT_LABELS
    df, _ = find_dataset(ROOT/'data_samples')
    df = subsample_patients(df, 60, 0).reset_index(drop=True)
    root = tmp_path/'hospital'
    for i, p in enumerate(df.path):
        stored = 4095 - np.round(load_image(p) * 4095).astype(np.uint16)          # inverted storage
        meta = FileMetaDataset(); meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = ComputedRadiographyImageStorage, f'1.2.3.{i}'
        ds = Dataset(); ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = ComputedRadiographyImageStorage, f'1.2.3.{i}'
        ds.Rows, ds.Columns = stored.shape
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, 'MONOCHROME1'
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.PixelData = stored.astype('<u2').tobytes()
        (root/df.patient_id[i]).mkdir(parents=True, exist_ok=True)
        ds.save_as(root/df.patient_id[i]/f'{i}.dcm', enforce_file_format=True)
    labels = [l for l in CHEXPERT_LABELS if l in df]
    csv = df[['patient_id', 'view'] + labels].assign(path=[f'{pid}/{i}.dcm' for i, pid in enumerate(df.patient_id)])
    csv[['path', 'patient_id', 'view'] + labels].to_csv(root/'labels.csv', index=False, float_format='%.0f')
    first = load_image(root/df.patient_id[0]/'0.dcm')
    assert np.abs(first - load_image(df.path[0])).max() <= 0.5 / 4095 + 1e-6           # MONOCHROME1 inverted back
    r = cli('--data', root, *TINY, '--out', tmp_path/'out')
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    report = json.loads((tmp_path/'out'/'report.json').read_text())
    assert 'labels.csv' in report['dataset']['source'] and report['linear_eval']['summary']

def test_bad_image_check_is_kept_in_the_cache_folder_and_redone_when_a_file_changes(tmp_path, monkeypatch):
    import pandas as pd
    import medcl_nb.experiment as ex
    bad_dir = tmp_path/'imgs'; shutil.copytree(FIXTURES/'bad_images', bad_dir)
    df = pd.DataFrame({'path': [str(bad_dir/f) for f in ('good.jpg', 'truncated.jpg', 'empty.png', 'good.png', 'gone.png')],
                       'patient_id': ['A', 'B', 'C', 'A', 'D']})
    good, bad = ex.drop_bad_images(df, 'skip', cache=tmp_path/'cache')
    assert list(good.index) == [0, 3] and [b['patient_id'] for b in bad] == ['B', 'C', 'D']
    def no_decoding(*a, **k): raise AssertionError('decoded again')
    monkeypatch.setattr(ex, 'check_images', no_decoding)
    good2, bad2 = ex.drop_bad_images(df, 'skip', cache=tmp_path/'cache')        # unchanged files: the kept check
    assert list(good2.index) == [0, 3] and bad2 == bad
    (bad_dir/'empty.png').write_bytes((bad_dir/'good.png').read_bytes())      # a file fixed: checked again
    with pytest.raises(AssertionError, match='decoded again'): ex.drop_bad_images(df, 'skip', cache=tmp_path/'cache')
    monkeypatch.undo()
    assert [b['patient_id'] for b in ex.drop_bad_images(df, 'skip', cache=tmp_path/'cache')[1]] == ['B', 'D']
    assert ex.drop_bad_images(df, 'skip', cache='auto')[1] == ex.drop_bad_images(df, 'skip')[1]   # no folder: checked each time
