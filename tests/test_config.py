from __future__ import annotations

import pytest

from semprior_core.config import RunConfig, config_dict, config_from_dict, load_config
from semprior_core.configtree import ConfigError


def test_defaults_round_trip():
    cfg = RunConfig()
    assert config_from_dict(config_dict(cfg)) == cfg


def test_yaml_and_overrides(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("train:\n  epochs: 7\nlabels:\n  lesps:\n    window: 21\n")
    cfg = load_config(p, ["train.lr=0.01", "--data.crop=128", "labels.guard.max_area=99"])
    assert cfg.train.epochs == 7 and cfg.train.lr == 0.01 and cfg.data.crop == 128
    assert cfg.labels.lesps.window == 21 and cfg.labels.guard.max_area == 99


def test_override_list_of_datasets():
    cfg = load_config(None, ["data.datasets=[{root: /x, name: a}, {root: /y, name: b}]"])
    assert [d.root for d in cfg.data.datasets] == ["/x", "/y"]


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.epoch=3", "unknown config key 'train.epoch'"),
        ("trian.epochs=3", "no section 'trian'"),
        ("train.lr=.nan", "train.lr: must be a finite number"),
        ("train.epochs=abc", "train.epochs: expected an integer"),
        ("train.optimizer=rmsprop", "train.optimizer: 'rmsprop' is not one of"),
        ("train.amp=1", "train.amp: expected true/false"),
        ("labels.lesps.window=4", "window must be a positive odd integer"),
        ("data.val_fraction=0", "val_fraction"),
    ],
)
def test_bad_values_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(".", r"\.")):
        load_config(None, [override])


def test_unknown_key_in_yaml(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("train:\n  epochs: 3\n  lerning_rate: 0.1\n")
    with pytest.raises(ConfigError, match="train.'lerning_rate'|'lerning_rate'"):
        load_config(p)


def test_nan_in_yaml(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("train:\n  lr: .nan\n")
    with pytest.raises(ConfigError, match="train.lr"):
        load_config(p)


def test_scam_lengths_must_match():
    with pytest.raises(ConfigError, match="scam.stages"):
        load_config(None, ["scam.stages=[0,1]", "scam.vfm_layers=[3]"])


def test_invalid_yaml_names_file(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match="bad.yaml: invalid YAML"):
        load_config(p)
