"""`dymn-tag evaluate`: how well the tags of a run match ground truth.

`metrics(truth, scores)` gives every clip-level figure over arrays (`clip_metrics`); `event_metrics` has
sed_eval's segment- and event-based figures; the readers of results and truth, the report and the command
(`evaluation.evaluate`) sit on them.
"""

from dymn_cli.evaluate.clip_metrics import ClipMetrics, metrics

__all__ = ["ClipMetrics", "metrics"]
