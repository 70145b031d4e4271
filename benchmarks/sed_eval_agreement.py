"""`dymn_cli.evaluate.event_metrics` against sed_eval itself, on random event lists.

    python3 -m venv /tmp/sedvenv && /tmp/sedvenv/bin/pip install sed_eval scipy
    PYTHONPATH=. /tmp/sedvenv/bin/python benchmarks/sed_eval_agreement.py [--trials 2000]

sed_eval pulls in dcase_util (and librosa, numba, ...), which the project does not need, so the tests
check a written-out reference instead; this script checks that reference's source, sed_eval. Each trial
draws up to 7 reference and 7 estimated events in each of 3 files over 3 classes (times on a 0.25 s or
0.1 s grid, or continuous), a segment resolution and an onset collar, evaluates sed_eval file by file as
its documentation says, and compares every overall figure. Error rates without reference activity are
left out (sed_eval divides by an epsilon, giving about 1e17; ours is NaN).
"""

from __future__ import annotations

import argparse
import math
import random
import warnings

import dcase_util
import sed_eval

from dymn_cli.evaluate.event_metrics import Event, event_metrics, segment_metrics

LABELS = ["dog", "cat", "bird"]
FILES = ["a.wav", "b.wav", "c.wav"]


def random_events(rng: random.Random, file: str, grid: int) -> list[Event]:
    events = []
    for _ in range(rng.randint(0, 7)):
        onset = rng.randint(0, 40) / grid if grid else rng.uniform(0, 10)
        length = rng.randint(0, 12) / grid if grid else rng.uniform(0, 3)
        events.append(Event(file, rng.choice(LABELS), onset, onset + length))
    return events


def as_sed_eval(events: list[Event]) -> dcase_util.containers.MetaDataContainer:
    return dcase_util.containers.MetaDataContainer(
        [{"filename": e.file, "event_label": e.label, "onset": e.onset, "offset": e.offset} for e in events]
    )


def theirs(reference: list[Event], estimated: list[Event], resolution: float, collar: float) -> tuple[dict, dict]:
    segments = sed_eval.sound_event.SegmentBasedMetrics(event_label_list=LABELS, time_resolution=resolution)
    events = sed_eval.sound_event.EventBasedMetrics(
        event_label_list=LABELS, t_collar=collar, evaluate_onset=True, evaluate_offset=False
    )
    for file in FILES:
        mine = as_sed_eval([e for e in reference if e.file == file])
        found = as_sed_eval([e for e in estimated if e.file == file])
        segments.evaluate(mine, found)
        events.evaluate(mine, found)
    return segments.overall, events.overall


def disagreements(rng: random.Random) -> list[str]:
    grid, resolution, collar = rng.choice([4, 10, 0]), rng.choice([1.0, 0.5, 0.1]), rng.choice([0.05, 0.2, 0.25, 1.0])
    reference = [e for file in FILES for e in random_events(rng, file, grid)]
    estimated = [e for file in FILES for e in random_events(rng, file, grid)]
    segment_counts, event_counts = theirs(reference, estimated, resolution, collar)
    segments = segment_metrics(reference, estimated, classes=LABELS, files=FILES, resolution=resolution)
    events = event_metrics(reference, estimated, classes=LABELS, files=FILES, collar=collar)
    tp, n_sys, n_ref = segment_counts["Ntp"], segment_counts["Nsys"], segment_counts["Nref"]
    pairs = {
        "segment TP": (segments.precision * n_sys if n_sys else 0.0, tp),
        "segment F1": (segments.f1, 2 * tp / (n_sys + n_ref) if n_sys + n_ref else 0.0),
        "segment S, D, I, N": (
            (segments.substitutions, segments.deletions, segments.insertions, segments.n_reference),
            (segment_counts["S"], segment_counts["D"], segment_counts["I"], n_ref),
        ),
        "event TP": (events.true_positives, event_counts["Ntp"]),
        "event F1": (events.f1, 2 * event_counts["Ntp"] / (event_counts["Nsys"] + event_counts["Nref"] or 1)),
    }
    if n_ref:
        er = (segment_counts["S"] + segment_counts["D"] + segment_counts["I"]) / n_ref
        pairs["segment ER"] = (segments.error_rate, er)
    where = f"grid 1/{grid or 'continuous'} s, resolution {resolution} s, collar {collar} s"
    return [f"{where}: {name} ours {a} sed_eval {b}" for name, (a, b) in pairs.items() if not _close(a, b)]


def _close(a: float | tuple, b: float | tuple) -> bool:
    if isinstance(a, tuple):
        return all(_close(x, y) for x, y in zip(a, b))
    return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    rng = random.Random(args.seed)
    failures = [line for _ in range(args.trials) for line in disagreements(rng)]
    print("\n".join(failures[:20]))
    print(f"sed_eval {sed_eval.__version__}: {args.trials} trials, {len(failures)} disagreements")
    raise SystemExit(1 if failures else 0)


if __name__ == "__main__":
    main()
