"""`dymn_cli.evaluate.clip_metrics` and `event_metrics` against independent implementations: scikit-learn for
AP, AUC and F1, the DCASE 2019 lwlrap reference written out as published, and sed_eval's definitions
written out segment by segment, on random and adversarial matrices (ties, classes without positives,
a single positive)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import norm
from sklearn.metrics import average_precision_score, f1_score, label_ranking_average_precision_score, roc_auc_score

from dymn_cli.evaluate.clip_metrics import (
    average_precision,
    best_f1_threshold,
    d_prime,
    lwlrap,
    metrics,
    roc_auc,
    threshold_figures,
)
from dymn_cli.evaluate.event_metrics import Event, event_metrics, segment_metrics


def reference_lwlrap_sklearn(truth: np.ndarray, scores: np.ndarray) -> float:
    """The DCASE 2019 task 2 reference's scikit-learn form (`calculate_overall_lwlrap_sklearn`), as
    published: tied scores ranked together."""
    sample_weight = np.sum(truth > 0, axis=1)
    nonzero_weight_sample_indices = np.flatnonzero(sample_weight > 0)
    return float(
        label_ranking_average_precision_score(
            truth[nonzero_weight_sample_indices, :] > 0,
            scores[nonzero_weight_sample_indices, :],
            sample_weight=sample_weight[nonzero_weight_sample_indices],
        )
    )


def reference_lwlrap(truth: np.ndarray, scores: np.ndarray) -> float:
    """The DCASE 2019 task 2 reference's numpy form (Dan Ellis's colab), as published, only its dtypes
    updated: ties broken by column order, so it is the reference only where a clip's scores are distinct."""

    def one_sample_positive_class_precisions(scores, truth):
        num_classes = scores.shape[0]
        pos_class_indices = np.flatnonzero(truth > 0)
        if not len(pos_class_indices):
            return pos_class_indices, np.zeros(0)
        retrieved_classes = np.argsort(scores)[::-1]
        class_rankings = np.zeros(num_classes, dtype=int)
        class_rankings[retrieved_classes] = range(num_classes)
        retrieved_class_true = np.zeros(num_classes, dtype=bool)
        retrieved_class_true[class_rankings[pos_class_indices]] = True
        retrieved_cumulative_hits = np.cumsum(retrieved_class_true)
        precision_at_hits = retrieved_cumulative_hits[class_rankings[pos_class_indices]] / (
            1 + class_rankings[pos_class_indices].astype(float)
        )
        return pos_class_indices, precision_at_hits

    num_samples, num_classes = scores.shape
    precisions_for_samples_by_classes = np.zeros((num_samples, num_classes))
    for sample_num in range(num_samples):
        pos_class_indices, precision_at_hits = one_sample_positive_class_precisions(scores[sample_num, :], truth[sample_num, :])
        precisions_for_samples_by_classes[sample_num, pos_class_indices] = precision_at_hits
    labels_per_class = np.sum(truth > 0, axis=0)
    weight_per_class = labels_per_class / float(np.sum(labels_per_class))
    per_class_lwlrap = np.sum(precisions_for_samples_by_classes, axis=0) / np.maximum(1, labels_per_class)
    return float(np.sum(per_class_lwlrap * weight_per_class))


@st.composite
def matrices(draw, max_rows: int = 40, max_classes: int = 8):
    """Truth and scores, the scores often drawn from a few values (ties within and across classes)."""
    rows = draw(st.integers(2, max_rows))
    classes = draw(st.integers(1, max_classes))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    density = draw(st.sampled_from([0.02, 0.1, 0.5, 0.9]))
    truth = rng.random((rows, classes)) < density
    levels = draw(st.sampled_from([2, 3, 10, 0]))  # 0: continuous scores
    scores = rng.random((rows, classes)) if levels == 0 else rng.integers(0, levels, (rows, classes)) / max(1, levels - 1)
    return truth, scores


@settings(max_examples=150, deadline=None)
@given(matrices())
def test_ap_and_auc_match_scikit_learn(arrays):
    truth, scores = arrays
    for k in range(truth.shape[1]):
        positives = truth[:, k].sum()
        if positives == 0:
            assert math.isnan(average_precision(truth[:, k], scores[:, k]))
            continue
        assert average_precision(truth[:, k], scores[:, k]) == pytest.approx(
            average_precision_score(truth[:, k], scores[:, k]), abs=1e-12
        )
        if positives < truth.shape[0]:
            assert roc_auc(truth[:, k], scores[:, k]) == pytest.approx(roc_auc_score(truth[:, k], scores[:, k]), abs=1e-12)
        else:
            assert math.isnan(roc_auc(truth[:, k], scores[:, k]))


EXTREMES = [-1e308, -1.0, -0.0, 0.0, 5e-324, 1e-300, 0.5, 0.5 + 2**-53, 1.0, np.nextafter(1.0, 2.0), 1e308]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # (scikit-learn's -1e308 - 1e308 overflows; its figures stand)
@settings(max_examples=150, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_ap_auc_and_lwlrap_on_extreme_scores(seed):
    """Scores a bit apart, signed zeros (equal: one tie), subnormals and the largest floats."""
    rng = np.random.default_rng(seed)
    truth = rng.random((rng.integers(2, 30), 3)) < 0.4
    truth[0] = True
    truth[1, 0] = False
    scores = rng.choice(EXTREMES, truth.shape)
    result = metrics(truth, scores)
    for k in range(3):
        assert result.ap[k] == pytest.approx(average_precision_score(truth[:, k], scores[:, k]), abs=1e-12)
        if not truth[:, k].all():
            assert result.class_auc[k] == pytest.approx(roc_auc_score(truth[:, k], scores[:, k]), abs=1e-12)
    assert result.lwlrap == pytest.approx(reference_lwlrap_sklearn(truth, scores), abs=1e-12)


def _distinct_in_each_clip(scores: np.ndarray) -> bool:
    return all(len(set(row.tolist())) == len(row) for row in scores)


@settings(max_examples=150, deadline=None)
@given(matrices())
def test_lwlrap_matches_the_dcase_reference(arrays):
    truth, scores = arrays
    if not truth.any():
        assert math.isnan(lwlrap(truth, scores))
        return
    assert lwlrap(truth, scores) == pytest.approx(reference_lwlrap_sklearn(truth, scores), abs=1e-12)
    if _distinct_in_each_clip(scores):  # (the numpy form breaks ties by column order)
        assert lwlrap(truth, scores) == pytest.approx(reference_lwlrap(truth, scores), abs=1e-12)


@settings(max_examples=100, deadline=None)
@given(matrices(), st.randoms(use_true_random=False))
def test_lwlrap_does_not_depend_on_the_order_of_the_classes(arrays, random):
    """The classes' order is the truth file's (folders sorted, CSV rows as they come): tied scores must
    not make the figure depend on it."""
    truth, scores = arrays
    if not truth.any():
        return
    order = list(range(scores.shape[1]))
    random.shuffle(order)
    assert lwlrap(truth[:, order], scores[:, order]) == pytest.approx(lwlrap(truth, scores), abs=1e-12)


def test_lwlrap_with_ties_ranks_them_together():
    """Two classes tied at the top of a clip, one of them true: precision 1/2 at it, whatever the order."""
    truth = np.array([[1, 0, 0], [0, 1, 0]], dtype=bool)
    scores = np.array([[0.9, 0.9, 0.1], [0.9, 0.9, 0.1]])
    assert lwlrap(truth, scores) == 0.5
    assert lwlrap(truth[:, ::-1], scores[:, ::-1]) == 0.5


@settings(max_examples=150, deadline=None)
@given(matrices(max_rows=25, max_classes=4))
def test_best_f1_threshold_is_the_best_of_every_cut(arrays):
    truth, scores = arrays
    for k in range(truth.shape[1]):
        threshold, best = best_f1_threshold(truth[:, k], scores[:, k])
        if not truth[:, k].any():
            assert math.isnan(threshold) and math.isnan(best)
            continue
        every_cut = {t: f1_score(truth[:, k], scores[:, k] >= t, zero_division=0) for t in np.unique(scores[:, k])}
        assert best == pytest.approx(max(every_cut.values()), abs=1e-12)
        assert best == pytest.approx(every_cut[threshold], abs=1e-12)
        assert threshold == max(t for t, f in every_cut.items() if f == pytest.approx(best, abs=1e-12))


def test_clip_metrics_on_a_known_case():
    truth = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 0]], dtype=bool)
    scores = np.array([[0.9, 0.2, 0.1], [0.8, 0.7, 0.3], [0.4, 0.6, 0.2], [0.1, 0.65, 0.9]])
    result = metrics(truth, scores, threshold=0.5)
    expected_ap = [average_precision_score(truth[:, k], scores[:, k]) for k in range(2)]
    assert result.mAP == pytest.approx(np.mean(expected_ap))  # (the class without positives is left out)
    assert math.isnan(result.ap[2]) and result.positives.tolist() == [2, 2, 0]
    expected_auc = np.mean([roc_auc_score(truth[:, k], scores[:, k]) for k in range(2)])
    assert result.auc == pytest.approx(expected_auc)
    assert result.d_prime == pytest.approx(math.sqrt(2) * norm.ppf(expected_auc))
    micro = f1_score(truth[:, :2], scores[:, :2] >= 0.5, average="micro")
    # (the third class's false positive at 0.9 counts against the micro figures too)
    assert result.at_threshold.false_positives == 3 and result.at_threshold.f1 == pytest.approx(2 * 3 / (2 * 3 + 3 + 1))
    assert micro != result.at_threshold.f1
    assert result.at_threshold.macro_f1 == pytest.approx(f1_score(truth[:, :2], scores[:, :2] >= 0.5, average="macro"))
    assert result.best_thresholds[1] == pytest.approx(0.6) and result.best_f1[1] == pytest.approx(0.8)


def test_a_single_positive_and_all_ties():
    truth = np.zeros((6, 2), dtype=bool)
    truth[3, 0] = truth[0, 1] = True
    scores = np.full((6, 2), 0.5)
    result = metrics(truth, scores)
    assert result.ap.tolist() == pytest.approx([average_precision_score(truth[:, k], scores[:, k]) for k in range(2)])
    assert result.class_auc.tolist() == pytest.approx([0.5, 0.5])
    assert result.d_prime == pytest.approx(0.0)
    assert result.lwlrap == 0.5 == pytest.approx(reference_lwlrap_sklearn(truth, scores))  # (each true class tied with the other)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_scores_that_are_not_numbers_are_refused(bad):
    truth = np.array([[1, 0], [0, 1]], dtype=bool)
    scores = np.array([[0.2, bad], [0.3, 0.4]])
    with pytest.raises(ValueError, match="not finite"):
        metrics(truth, scores)
    with pytest.raises(ValueError, match="not finite"):
        lwlrap(truth, scores)
    with pytest.raises(ValueError, match="not finite"):
        threshold_figures(truth, scores, 0.5)


def test_shapes_and_truth_values_are_checked():
    with pytest.raises(ValueError, match="one shape"):
        metrics(np.zeros((2, 3), dtype=bool), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="0/1"):
        metrics(np.full((2, 2), 2), np.zeros((2, 2)))


def test_d_prime_of_chance_and_of_perfect():
    assert d_prime(0.5) == 0.0
    assert d_prime(1.0) == math.inf
    assert d_prime(0.84) == pytest.approx(math.sqrt(2) * norm.ppf(0.84))
    assert math.isnan(d_prime(math.nan))


# sed_eval's definitions, written out one segment and one event at a time.


def reference_segments(reference, estimated, classes, files, resolution):
    ntp = nfp = nfn = s = d = i = n = 0
    for file in files:
        ref = [e for e in reference if e.file == file]
        est = [e for e in estimated if e.file == file]
        length = max([e.offset for e in ref + est] + [0.0])
        for segment in range(max(1, math.ceil(length / resolution))):

            def active(events, label, segment=segment):
                return any(
                    e.label == label and math.floor(e.onset / resolution) <= segment < math.ceil(e.offset / resolution)
                    for e in events
                )

            fn = fp = 0
            for label in classes:
                r, e = active(ref, label), active(est, label)
                ntp += r and e
                fp += e and not r
                fn += r and not e
                n += r
            nfp, nfn = nfp + fp, nfn + fn
            s, d, i = s + min(fn, fp), d + max(0, fn - fp), i + max(0, fp - fn)
    precision = ntp / (ntp + nfp) if ntp + nfp else 0.0
    recall = ntp / (ntp + nfn) if ntp + nfn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return f1, (s + d + i) / n if n else math.nan, (s, d, i, n)


def brute_force_matches(ref, est, collar):
    """The largest set of disjoint onset-matched pairs, by trying every assignment (small lists only)."""
    if len(ref) > len(est):
        ref, est = est, ref
    best = 0
    for chosen in itertools.permutations(range(len(est)), len(ref)):
        best = max(best, sum(abs(ref[a].onset - est[b].onset) <= collar for a, b in enumerate(chosen)))
    return best


@st.composite
def event_lists(draw):
    files, labels = ["a.wav", "b.wav"], ["dog", "cat", "bird"]

    # Quarter seconds put onsets and offsets on segment edges; tenths put onset differences a hair either
    # side of a decimal collar, as times read from files do.
    grid = draw(st.sampled_from([4, 10]))

    def events(n):
        out = []
        for _ in range(n):
            onset = draw(st.integers(0, 40)) / grid
            length = draw(st.integers(0, 12)) / grid
            out.append(Event(draw(st.sampled_from(files)), draw(st.sampled_from(labels)), onset, onset + length))
        return out

    return events(draw(st.integers(0, 6))), events(draw(st.integers(0, 6))), files, labels


@settings(max_examples=150, deadline=None)
@given(event_lists(), st.sampled_from([0.5, 1.0]))
def test_segment_metrics_follow_sed_eval(lists, resolution):
    reference, estimated, files, labels = lists
    figures = segment_metrics(reference, estimated, classes=labels, files=files, resolution=resolution)
    f1, error_rate, (s, d, i, n) = reference_segments(reference, estimated, labels, files, resolution)
    assert figures.f1 == pytest.approx(f1)
    assert (figures.substitutions, figures.deletions, figures.insertions, figures.n_reference) == (s, d, i, n)
    assert (math.isnan(figures.error_rate) and math.isnan(error_rate)) or figures.error_rate == pytest.approx(error_rate)


@settings(max_examples=150, deadline=None)
@given(event_lists(), st.sampled_from([0.0, 0.2, 0.25, 1.0]))
def test_event_metrics_match_the_most_onsets(lists, collar):
    reference, estimated, files, labels = lists
    figures = event_metrics(reference, estimated, classes=labels, files=files, collar=collar)
    expected = sum(
        brute_force_matches(
            [e for e in reference if (e.file, e.label) == key], [e for e in estimated if (e.file, e.label) == key], collar
        )
        for key in itertools.product(files, labels)
    )
    assert figures.true_positives == expected
    total = len(reference) + len(estimated)
    assert figures.f1 == pytest.approx(2 * expected / total if total else 0.0)


def test_segment_metrics_known_case():
    reference = [Event("x", "dog", 0.5, 2.2), Event("x", "cat", 3.0, 4.0)]
    estimated = [Event("x", "dog", 0.0, 1.0), Event("x", "bird", 3.1, 3.9)]
    figures = segment_metrics(reference, estimated, classes=["dog", "cat", "bird"])
    # dog: reference in segments 0-2, estimated in 0: 1 TP, 2 FN; cat: 1 FN in segment 3; bird: 1 FP in segment 3
    assert figures.f1 == pytest.approx(2 * 1 / (2 * 1 + 1 + 3))
    assert (figures.substitutions, figures.deletions, figures.insertions, figures.n_reference) == (1, 2, 0, 4)
    assert figures.error_rate == pytest.approx(3 / 4)


def test_the_package_offers_metrics_over_arrays():
    from dymn_cli import evaluate

    truth = np.array([[1, 0], [0, 1], [1, 1]])
    scores = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.7]])
    figures = evaluate.metrics(truth, scores)
    assert isinstance(figures, evaluate.ClipMetrics)
    assert figures.mAP == 1.0 and figures.positives.tolist() == [2, 2]


@pytest.mark.parametrize(
    ("truth", "scores", "message"),
    [
        (np.zeros((2, 3)), np.zeros((2, 2)), "one shape"),
        (np.array([1, 0, 1]), np.array([0.1, 0.2, 0.3]), r"2-D \[n, classes\] array, got shape \(3,\).*reshape\(-1, 1\)"),
        (np.zeros((2, 2, 2)), np.zeros((2, 2, 2)), "2-D"),
        (None, None, "2-D"),
        (np.zeros((0, 3)), np.zeros((0, 3)), "empty"),
        (np.zeros((3, 0)), np.zeros((3, 0)), "empty"),
        ([[1, 0], [0]], [[0.9, 0.1], [0.2]], "unequal lengths"),
        (np.eye(2), np.eye(2, dtype=bool), "booleans"),
        (np.eye(2), np.array([["a", "b"], ["c", "d"]]), "real numbers"),
        (np.eye(2), np.eye(2) * 1j, "real numbers"),
        (np.array([[2, 0], [0, 1]]), np.eye(2), "0/1 .* got 2"),
        (np.array([[0.5, 0], [0, 1]]), np.eye(2), "0/1"),
        (np.array([[math.nan, 0], [0, 1]]), np.eye(2), "0/1"),
        (np.array([["1", "0"], ["0", "1"]]), np.eye(2), "0/1"),
        (np.array([[0.9, 0.1], [0.2, 0.8]]), np.eye(2, dtype=bool), "booleans"),  # (the arguments swapped)
    ],
)
def test_bad_arrays_are_one_clear_value_error(truth, scores, message):
    with pytest.raises(ValueError, match=message):
        metrics(truth, scores)


def test_lists_and_integer_scores_are_taken_as_numbers():
    truth, scores = [[1, 0], [0, 1], [1, 1]], [[3, 1], [0, 2], [2, 2]]
    expected = metrics(np.array(truth, dtype=bool), np.array(scores, dtype=np.float64))
    result = metrics(truth, scores)
    assert (result.mAP, result.auc, result.lwlrap) == (expected.mAP, expected.auc, expected.lwlrap)
    assert result.mAP == pytest.approx(
        np.mean([average_precision_score(np.array(truth)[:, k], np.array(scores)[:, k]) for k in range(2)])
    )


@pytest.mark.parametrize("threshold", [math.nan, math.inf])
def test_a_threshold_that_is_no_number_is_refused(threshold):
    with pytest.raises(ValueError, match="threshold must be a finite number"):
        metrics(np.eye(2), np.eye(2), threshold=threshold)


def test_the_onset_collar_compares_as_sed_eval_does():
    """sed_eval's `validate_onset` is `abs(reference - estimated) <= collar` on the floats as they are:
    2.0 and 2.2 are 0.20000000000000018 apart, outside a 0.2 s collar; 1.0 and 1.2 are 0.19999999999999996
    apart, inside (both checked with sed_eval 0.2.1)."""
    for reference_onset, estimated_onset, matched in [(1.0, 1.2, 1), (2.0, 2.2, 0), (0.3, 0.5, 1), (3.0, 3.2, 0)]:
        figures = event_metrics(
            [Event("x", "dog", reference_onset, reference_onset + 1)],
            [Event("x", "dog", estimated_onset, estimated_onset + 1)],
            classes=["dog"],
            collar=0.2,
        )
        assert figures.true_positives == matched
