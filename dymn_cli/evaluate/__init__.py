"""`dymn-tag evaluate`: how well the tags of a run match ground truth.

`metrics` (clip-level figures over arrays) and `event_metrics` (sed_eval's segment- and event-based
figures) are the measures; the readers of results and truth, the report and the command sit on them.
"""
