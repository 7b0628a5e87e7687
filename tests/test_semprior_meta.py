"""The validation batch that scores semprior's look-ahead (``semprior.meta_val_crops``)."""

from __future__ import annotations

import pytest

from tests.test_networks import _trainer


def _crops_with_a_target(tmp_path, mode: str) -> list[bool]:
    trainer = _trainer(tmp_path / mode, f"semprior.meta_val_crops={mode}", "data.target_prob=1.0",
                       "data.target_jitter=0.0")
    method = trainer.method
    found = []
    for step in range(6):
        method.steps = step  # a new seeded batch per meta step
        batch = method._val_batch()
        found += (batch["target"].flatten(1).amax(1) > 0).tolist()
    return found


def test_meta_validation_crops_are_placed_like_training_crops(tmp_path):
    # centred on the validation points as training crops are (target_prob 1, no jitter): every crop holds one
    train = _crops_with_a_target(tmp_path, "train")
    assert len(train) == 12 and all(train)
    # anywhere in the 64² images (protocols up to v3): 32² crops miss the one or two small targets
    uniform = _crops_with_a_target(tmp_path, "uniform")
    assert len(uniform) == 12 and not all(uniform)


def test_meta_val_crops_rejects_unknown_modes():
    from semprior_core.config import load_config
    from semprior_core.config.tree import ConfigError

    with pytest.raises(ConfigError, match="meta_val_crops"):
        load_config(None, ["semprior.meta_val_crops=centred"])


def test_a_saved_config_from_before_meta_val_crops_keeps_uniform_crops():
    from semprior_core.config import config_dict, config_from_dict, load_config

    new = load_config(None, [])
    assert new.semprior.meta_val_crops == "train"  # the default for new runs
    saved = config_dict(new)
    assert config_from_dict(saved).semprior.meta_val_crops == "train"  # a saved value is kept
    del saved["semprior"]["meta_val_crops"]  # a run saved before the field existed
    assert config_from_dict(saved).semprior.meta_val_crops == "uniform"
    assert "meta_val_crops" not in saved["semprior"]  # the caller's dict is left alone
