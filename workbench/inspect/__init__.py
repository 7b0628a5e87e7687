"""Inspection views of run directories, as data (NumPy arrays, lists of dicts).

Notebooks and the dashboard only lay these out. Every function takes a run directory (or an opened
:class:`RunHandle`, which caches networks, images, features and predictions).
"""

from __future__ import annotations

from .attributions import attribution_inputs, attributions, default_target
from .clusters import cluster_gallery, cluster_summary, cluster_weights
from .compare import compare_runs, dataset_warning, expand_runs, format_mean_std
from .false_alarms import (
    false_alarm_folders,
    false_alarm_gallery,
    false_alarm_patch,
    false_alarm_table,
    false_alarms,
)
from .handle import RunHandle, default_run_path, open_run
from .labels import (
    image_label_history,
    label_change,
    label_frame,
    label_images,
    label_quality,
    label_updates,
    most_changed_image,
    update_caption,
)
from .overview import curves, metrics_table
from .predictions import example_keys, example_predictions
from .scam import scam_maps, scam_toggle
from .tables import rounded

__all__ = [
    "RunHandle",
    "attribution_inputs",
    "attributions",
    "cluster_gallery",
    "cluster_summary",
    "cluster_weights",
    "compare_runs",
    "curves",
    "dataset_warning",
    "default_run_path",
    "default_target",
    "example_keys",
    "example_predictions",
    "expand_runs",
    "false_alarm_folders",
    "false_alarm_gallery",
    "false_alarm_patch",
    "false_alarm_table",
    "false_alarms",
    "format_mean_std",
    "image_label_history",
    "label_change",
    "label_frame",
    "label_images",
    "label_quality",
    "label_updates",
    "metrics_table",
    "most_changed_image",
    "open_run",
    "rounded",
    "scam_maps",
    "scam_toggle",
    "update_caption",
]
