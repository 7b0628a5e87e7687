"""The run report's words about label evolution."""

from __future__ import annotations

from workbench.report import label_growth_sentence


def _row(epoch, iou, area, bare, images=10):
    return {"epoch": epoch, "mean_iou_vs_gt": iou, "mean_area": area, "bare_point": bare, "images": images}


def test_growth_sentence_names_first_and_last_update():
    text = label_growth_sentence([_row(0, 0.1, 1.0, 10), _row(4, None, 2.0, 8), _row(8, 0.45, 12.5, 1)])
    assert "grew" in text and "0.100 at epoch 0" in text and "0.450 at epoch 8" in text
    assert "+0.350" in text and "2 label updates counted" in text and "1 of 10 images still bare points" in text


def test_growth_sentence_says_when_nothing_changed():
    assert "did not change" in label_growth_sentence([_row(0, 0.2, 1.0, 10), _row(5, 0.2, 1.0, 10)])
    assert "shrank" in label_growth_sentence([_row(0, 0.3, 1.0, 10), _row(5, 0.1, 1.0, 10)])
    assert "No dense masks" in label_growth_sentence([_row(0, None, 1.0, 10)])
