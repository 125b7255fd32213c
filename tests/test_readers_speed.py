"""Readers are vectorized: a real-size CheXpert train.csv (223,414 rows) and ChestX-ray14 table
(112,120 rows) each read in a few seconds. Tables are synthesized in the exact formats
(tests/fixtures/big_tables.py); images are not written, so `check_files=False` (as on a network drive).
The bound is deliberately generous (CI machines are noisy); the printed seconds are what to look at.
Run: pytest tests/test_readers_speed.py -s
"""
import sys, time
from pathlib import Path
import numpy as np
sys.path.insert(0, str(Path(__file__).parent/'fixtures'))
from big_tables import write_chexpert, write_nih14
from medcl_nb.data.readers import read_chexpert, read_nih14, check_schema, CHEXPERT_LABELS, NIH_LABELS

BOUND_S = 15

def timed_read(reader, root):
    "Read `root` without stat-ing the images (as on a network drive); the rows, checked against the schema, and seconds."
    t = time.perf_counter()
    df = reader(root, check_files=False)
    secs = time.perf_counter() - t
    print(f"{reader.__name__}: {len(df)} rows in {secs:.2f} s")
    check_schema(df)
    return df, secs

def test_read_chexpert_223k(tmp_path):
    df, secs = timed_read(read_chexpert, write_chexpert(tmp_path))
    assert len(df) == 223_414
    assert df[CHEXPERT_LABELS].dtypes.eq(np.float32).all()
    assert secs < BOUND_S

def test_read_nih14_112k(tmp_path):
    df, secs = timed_read(read_nih14, write_nih14(tmp_path))
    assert len(df) == 112_120
    assert set(df.split) == {'train', 'test'}
    assert not set(df.patient_id[df.split == 'train']) & set(df.patient_id[df.split == 'test'])
    assert secs < BOUND_S
