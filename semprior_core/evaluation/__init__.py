"""Scoring: IRSTD metrics (IoU, nIoU, Pd, Fa), Pd–Fa curves and size/contrast bins, checkpoint selection on
validation, paired significance tests, post-processing, and evaluating a run on its own or another dataset."""
