"""The course's graded assignments (nbs/assignments, nbgrader's format). For every assignment:
(a) the instructor notebook passes all its autograded tests (and every other cell runs);
(b) the student version written by `nbgrader generate_assignment` holds no solution and fails every autograded test,
    because of the blanks (NotImplementedError, or a NameError for a value a blank did not define), not because of anything else;
(c) plausible wrong answers, planted in place of a solution cell, fail a named test with a message that teaches.
The wrong answers live here, never in the student versions. Notebooks run in-process (`GradedRun`, execnb's shell): each
instructor notebook once, and each wrong answer reruns only the solution cell it replaces and the test cell it should fail."""
import re
import pytest

pytest.importorskip('nbgrader')          # a dev extra: `pip install -e ".[dev]"`
from pathlib import Path
from medcl_nb.grading import GradedRun, assignment_notebooks, graded_cells, release_assignments, medcl_assignments_cli, _read

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT/'nbs'/'assignments'
NOTEBOOKS = {p.stem: p for p in assignment_notebooks(SOURCE)}
STEMS = sorted(NOTEBOOKS)

def test_the_course_has_its_assignments():
    assert [s[:2] for s in STEMS][:4] == ['01', '02', '03', '04'], STEMS
    for stem in STEMS:
        cells = graded_cells(NOTEBOOKS[stem])
        assert cells.grade_id.is_unique, f"{stem}: grade_ids must be unique: {cells.grade_id[cells.grade_id.duplicated()].tolist()}"
        assert (cells.kind == 'tests').sum() >= 4 and (cells.kind == 'answer').sum() >= 1, stem

@pytest.mark.parametrize('stem', STEMS)
def test_points_match_the_announced_total(stem):
    "The intro's '(N points)' and its table of points are what the cells carry."
    nb = _read(NOTEBOOKS[stem])
    intro = nb.cells[0].source
    announced = int(re.search(r'How it is graded \((\d+) points\)', intro).group(1))
    table = [int(p) for p in re.findall(r'^\|[^|\n]+\|[^|\n]+\| (\d+) \|$', intro, re.M)]
    cells = graded_cells(nb)
    assert cells.points.sum() == announced == sum(table), (stem, cells.points.sum(), announced, table)
    assert sorted(cells[cells.points > 0].points.tolist()) == sorted(table), (stem, cells.points.tolist(), table)

def test_the_command_writes_the_student_versions(tmp_path, capsys):
    "medcl_assignments (medcl_nb.grading:medcl_assignments_cli), as a teacher runs it from the clone."
    assert medcl_assignments_cli(['--out', str(tmp_path)]) == 0
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob('*.ipynb')) == [f'{s}/{s}.ipynb' for s in STEMS]
    assert capsys.readouterr().out.count('wrote ') == len(STEMS)
    with pytest.raises(SystemExit) as e: medcl_assignments_cli(['--help'])
    assert e.value.code == 0 and '--check' in capsys.readouterr().out

@pytest.fixture(scope='module')
def released(tmp_path_factory):
    "The student versions, written once for all assignments by nbgrader."
    return {p.stem: p for p in release_assignments(SOURCE, tmp_path_factory.mktemp('release'))}

@pytest.fixture(scope='module')
def solved():
    "Each instructor notebook run once; the wrong answers reuse its shell."
    runs = {}
    def run(stem):
        if stem not in runs:
            runs[stem] = GradedRun(NOTEBOOKS[stem])
            runs[stem].run_all()
        return runs[stem]
    return run

@pytest.mark.parametrize('stem', STEMS)
def test_solution_passes(stem, solved):
    run = solved(stem)
    broken = {i: e for i, e in run.errors.items() if e is not None}
    assert not broken, f"{stem}: cells failed in the instructor version: {broken}"
    tests = run.report().query("kind == 'tests'")
    assert tests.passed.all() and len(tests) >= 4, tests
    earned, available = run.score()
    assert earned == available > 0

def _solution_lines(nb):
    "{grade_id: the non-trivial lines between BEGIN and END SOLUTION} of the instructor notebook."
    out = {}
    for c in nb.cells:
        m = re.search(r'### BEGIN SOLUTION\n(.*?)### END SOLUTION', c.source, re.S)
        if m: out[c.metadata['nbgrader']['grade_id']] = [l.strip() for l in m.group(1).splitlines() if len(l.strip()) > 12]
    return out

@pytest.mark.parametrize('stem', STEMS)
def test_student_version_holds_no_solution(stem, released):
    student = _read(released[stem])
    text = released[stem].read_text()
    assert 'BEGIN SOLUTION' not in text and 'END SOLUTION' not in text
    cells = {c.metadata['nbgrader']['grade_id']: c.source for c in student.cells if 'nbgrader' in c.metadata}
    lines = _solution_lines(_read(NOTEBOOKS[stem]))
    assert lines, stem
    for grade_id, solution in lines.items():
        leaked = [l for l in solution if l in cells[grade_id]]
        assert not leaked, f"{stem}/{grade_id}: solution lines in the student version: {leaked}"
        assert 'YOUR CODE HERE' in cells[grade_id] or 'YOUR ANSWER HERE' in cells[grade_id], cells[grade_id]
    assert all(not c.get('outputs') for c in student.cells if c.cell_type == 'code'), 'nbgrader clears the outputs'

@pytest.mark.parametrize('stem', STEMS)
def test_student_version_fails_every_test(stem, released):
    "Run from its release folder (outside nbs/): data_samples is still found, and every test fails because of a blank."
    report = GradedRun(released[stem], cwd=released[stem].parent).run_all()
    tests = report.query("kind == 'tests'")
    assert len(tests) == (graded_cells(NOTEBOOKS[stem]).kind == 'tests').sum()
    assert not tests.passed.any(), tests[tests.passed.astype(bool)]
    causes = tests.error.str.extract(r'^(\w+)')[0]
    assert causes.isin(['NotImplementedError', 'NameError']).all(), tests.assign(cause=causes)[['grade_id', 'error']].to_string()
    locked = report.query("kind == 'locked' and passed == False")      # setup cells run: the blanks are the only failures
    assert locked.empty or locked.error.str.match(r'^(NotImplementedError|NameError)').all(), locked

# (assignment, solution cell replaced, the wrong answer, test cell that must fail, what its message must say)
WRONG = [
    ('01_alignment_uniformity', 'alignment', '''
def alignment(x, y, alpha=2):
    return (x - y).norm(dim=1).pow(alpha).mean()          # forgot to normalize
''', 'test_alignment', 'you did not L2-normalize the rows first'),
    ('01_alignment_uniformity', 'uniformity', '''
def uniformity(x, t=2):
    z = normalize(x)
    return torch.log(torch.exp(-t * torch.cdist(z, z).pow(2)).mean())   # the mean over all N^2 pairs, i = j included
''', 'test_uniformity', 'including each point with itself (i = j)'),
    ('01_alignment_uniformity', 'infonce_parts', '''
def infonce_parts(q, k, tau=0.1):
    return alignment(q, k) / (2 * tau), torch.logsumexp(normalize(q) @ normalize(k).T / tau, dim=1).mean()   # lost -1/tau
''', 'test_infonce_parts', 'you dropped the constant -1/tau'),
    ('01_alignment_uniformity', 'objectives', '''
objectives = {'align': lambda z1, z2: alignment(z1, z2), 'uniform': lambda z1, z2: (uniformity(z1) + uniformity(z2)) / 2,
              'both': lambda z1, z2: alignment(z1, z2)}     # 'both' without its uniformity term
''', 'test_objectives', "objectives['both'] must add the alignment loss to the mean uniformity"),
    ('02_ntxent_moco_queue', 'nt_xent', '''
def nt_xent(z1, z2, tau=0.1):
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    return F.cross_entropy(z @ z.T / tau, torch.arange(len(z)).roll(len(z1)))   # the diagonal left in
''', 'test_nt_xent', 'you kept each view as its own candidate'),
    ('02_ntxent_moco_queue', 'enqueue', '''
def enqueue(queue, ptr, keys):
    n = min(len(keys), len(queue) - ptr)                  # a slice cannot wrap: the rest of the batch is dropped
    queue[ptr:ptr + n] = F.normalize(keys[:n], dim=1)
    return (ptr + len(keys)) % len(queue)
''', 'test_enqueue', 'a slice queue[ptr:ptr + B] cannot wrap'),
    ('02_ntxent_moco_queue', 'enqueue', '''
def enqueue(queue, ptr, keys):
    queue[(ptr + torch.arange(len(keys))) % len(queue)] = F.normalize(keys, dim=1)
    return ptr + len(keys)                                # the pointer does not wrap
''', 'test_enqueue', 'the pointer must wrap: ptr = (ptr + B) % K'),
    ('02_ntxent_moco_queue', 'moco_loss', '''
def moco_loss(q, k, queue, tau=0.2):
    q, k, queue = F.normalize(q, dim=1), F.normalize(k, dim=1), F.normalize(queue, dim=1)
    logits = torch.cat([q @ k.T, q @ queue.T], dim=1) / tau   # the batch's other keys as negatives too
    return F.cross_entropy(logits, torch.arange(len(q)))
''', 'test_moco_loss', "MoCo's negatives come from the queue only"),
    ('02_ntxent_moco_queue', 'moco_step', '''
def moco_step(q, k, queue, ptr, tau=0.2):
    ptr = enqueue(queue, ptr, k)                          # enqueued too early
    return moco_loss(q, k, queue, tau), ptr
''', 'test_moco_step', 'you enqueued the keys before computing the loss'),
    ('03_patient_splits_leak', 'split_by_patient', '''
def split_by_patient(df, test_pct=0.25, seed=0):
    test = df.sample(frac=test_pct, random_state=seed)    # an image-level split
    return df.drop(test.index), test
''', 'test_split_by_patient', 'you split the images, not the patients'),
    ('03_patient_splits_leak', 'draw_fraction', '''
def draw_fraction(train, fraction, seed=0):
    return train.sample(frac=fraction, random_state=seed)  # a fraction of the images
''', 'test_draw_fraction', 'you sampled images'),
    ('03_patient_splits_leak', 'label_concordance', '''
def label_concordance(df, label):
    known = df[df[label].notna()]
    positives = known.groupby('patient_id')[label].sum(); images = known.groupby('patient_id').size()
    pairs = lambda m: m * (m + 1) / 2                       # counts (i, i) as a pair
    within_agree, within_pairs = (pairs(positives) + pairs(images - positives)).sum(), pairs(images).sum()
    all_agree, all_pairs = pairs(positives.sum()) + pairs((images - positives).sum()), pairs(images.sum())
    return within_agree / within_pairs, (all_agree - within_agree) / (all_pairs - within_pairs)
''', 'test_label_concordance', 'you paired each image with itself too'),
    ('03_patient_splits_leak', 'split_auc', '''
def split_auc(X, df, labels, test_mask, k=5):
    aucs = []
    for label in labels:
        y = df[label].fillna(0).to_numpy()                 # unknown counted as negative
        model = KNeighborsClassifier(k).fit(X[~test_mask], y[~test_mask])
        aucs.append(roc_auc_score(y[test_mask], model.predict_proba(X[test_mask])[:, 1]))
    return float(np.mean(aucs))
''', 'test_split_auc', 'you counted unknown (NaN) labels as negatives'),
    ('03_patient_splits_leak', 'leak', '''
rows = []
for seed in range(10):
    patient_test = df.index.isin(split_by_patient(df, 0.25, seed)[1].index)
    for name, X in features.items():                      # the "image-level" mask is the patient-level one
        for split in ('image', 'patient'):
            rows.append(dict(features=name, seed=seed, split=split, auc=split_auc(X, df, LABELS, patient_test)))
leak = pd.DataFrame(rows)
''', 'test_leak', 'test images must be drawn one by one'),
    ('04_linear_probe_bootstrap', 'fit_probe', '''
def fit_probe(X_train, y_train, X_valid, y_valid, Cs=CS):
    best, best_auc = None, -np.inf
    for C in Cs:
        model = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000)).fit(X_train, y_train)
        auc = roc_auc_score(y_train, model.predict_proba(X_train)[:, 1])     # tuned on the training images
        if auc > best_auc: best, best_auc = (model, C), auc
    return best
''', 'test_fit_probe', 'you chose C by the training AUC'),
    ('04_linear_probe_bootstrap', 'resample_patients', '''
def resample_patients(patients, rng):
    return rng.integers(0, len(patients), len(patients))  # resamples images
''', 'test_resample_patients', 'you resampled images (rows), not patients'),
    ('04_linear_probe_bootstrap', 'bootstrap_auc', '''
def bootstrap_auc(y, scores, patients, n=1000, seed=0):
    y, scores, rng = np.asarray(y), np.asarray(scores), np.random.default_rng(seed)
    aucs = []
    for _ in range(n):
        rows = resample_patients(np.arange(len(y)), rng)  # every image its own patient
        if len(np.unique(y[rows])) == 2: aucs.append(roc_auc_score(y[rows], scores[rows]))
    return (roc_auc_score(y, scores), *np.quantile(aucs, [0.025, 0.975]))
''', 'test_bootstrap_auc', 'you resampled images: an image bootstrap gives about'),
    ('04_linear_probe_bootstrap', 'label_efficiency', '''
def label_efficiency(X, df, label, fractions=(0.02, 0.05, 0.1, 0.25, 1.0), draws=3, seed=0):
    y = df[label].to_numpy(dtype=float); known = ~np.isnan(y)
    valid, test = known & (df.split == 'valid').to_numpy(), known & (df.split == 'test').to_numpy()
    rows = []
    for f in fractions:
        for d in range(1 if f == 1 else draws):
            patients = tuple(label_fraction(df, f, seed=(seed, d), labels=[label]).patient_id.unique())   # all patients
            labeled = known & df.patient_id.isin(patients).to_numpy()
            model, C = fit_probe(X[labeled], y[labeled], X[valid], y[valid])
            rows.append(dict(fraction=f, draw=d, n_patients=len(patients), patients=patients,
                             auc=roc_auc_score(y[test], model.predict_proba(X[test])[:, 1])))
    return pd.DataFrame(rows)
''', 'test_label_efficiency', "draw from df[df.split == 'train'], not from df"),
    ('05_convirt_image_text', 'image_to_text', '''
def image_to_text(img, txt, tau=0.1):
    return F.cross_entropy(img @ txt.T / tau, torch.arange(len(img)))   # raw dot products: not normalized
''', 'test_image_to_text', 'you did not L2-normalize the embeddings'),
    ('05_convirt_image_text', 'text_to_image', '''
def text_to_image(img, txt, tau=0.1):
    logits = F.normalize(img, dim=1) @ F.normalize(txt, dim=1).T / tau
    return F.cross_entropy(logits, torch.arange(len(img)))              # the rows again: image -> text
''', 'test_text_to_image', 'you computed image -> text again (the rows): transpose the logits'),
    ('05_convirt_image_text', 'convirt', '''
def convirt(img, txt, tau=0.1, lambda_=0.75):
    return lambda_ * text_to_image(img, txt, tau) + (1 - lambda_) * image_to_text(img, txt, tau)   # weights swapped
''', 'test_convirt', 'you swapped the weights: lambda_ weights the image -> text direction'),
    ('06_segmentation_metrics', 'dice', '''
def dice(pred, target):
    total = pred.sum() + target.sum()
    return 1.0 if total == 0 else float((pred & target).sum() / total)  # the factor 2 forgotten
''', 'test_dice', 'you forgot the factor 2'),
    ('06_segmentation_metrics', 'surface_distances', '''
def surface_distances(a, b):
    return cdist(np.argwhere(a), np.argwhere(b & ~binary_erosion(b))).min(axis=1)   # from every pixel of a, not its boundary
''', 'test_surface_distances', 'you measured from every pixel of the mask, not only its boundary'),
    ('06_segmentation_metrics', 'hausdorff', '''
def hausdorff(a, b, percentile=100):
    if not a.any() or not b.any(): return math.inf
    return float(np.percentile(surface_distances(a, b), percentile))  # one direction only
''', 'test_hausdorff', 'you took only one direction'),
]

def test_every_assignment_has_planted_wrong_answers():
    assert {w[0] for w in WRONG} >= set(STEMS)

@pytest.mark.parametrize('stem,solution,wrong,test,message', WRONG, ids=[f'{w[0][:2]}-{w[1]}-{i}' for i, w in enumerate(WRONG)])
def test_wrong_answer_fails_with_a_teaching_message(stem, solution, wrong, test, message, solved):
    run = solved(stem)
    assert run.rerun(solution, wrong) is None, 'the wrong answer itself runs'
    try:
        error = run.rerun(test)
        assert error is not None, f"{stem}/{test} passed with a wrong {solution}"
        assert error.startswith('CheckFailed: '), error
        assert message in error, error
        assert 'Why it matters: ' in error and 'expected' in error, error
    finally:
        assert run.rerun(solution) is None                 # put the solution back: the test passes again
    assert run.rerun(test) is None
