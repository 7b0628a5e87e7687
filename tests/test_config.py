from __future__ import annotations

import pytest

from semprior_core.config import RunConfig, config_dict, config_from_dict, load_config
from semprior_core.config.tree import ConfigError


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
    with pytest.raises(ConfigError, match="scam.vfm_layers"):
        load_config(None, ["scam.stages=[0,1]", "scam.vfm_layers=[3]"])


def test_invalid_yaml_names_file(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match="bad.yaml: invalid YAML"):
        load_config(p)


@pytest.mark.parametrize(
    "override, message",
    [
        ("data.batch_size=0", "data.batch_size must be >= 1, got 0"),  # once a combined rule naming three fields
        ("data.num_workers=-1", "data.num_workers must be >= 0, got -1"),
        ("train.lr=0", "train.lr must be > 0, got 0.0"),
        ("labels.lesps.core=35", "labels.lesps.core must be a positive odd integer <= window (33), got 35"),
        ("labels.pal.enhance_end=0.1", "labels.pal.enhance_end must be in (pre_start=0.2, 1], got 0.1"),
        ("labels.guard.max_area=0", "labels.guard.max_area must be >= 1 pixel, got 0"),
        ("semprior.meta_every=0", "semprior.meta_every must be >= 1, got 0"),
        ("vfm.layers=[]", "vfm.layers must list at least one block, got []"),
    ],
)
def test_every_section_names_the_field_at_fault_with_its_value(override, message):
    with pytest.raises(ConfigError) as info:
        load_config(None, [override])
    assert str(info.value) == message


def test_direct_construction_is_as_strict_as_the_loader_and_names_the_class():
    from semprior_core.config import MethodConfig
    from semprior_core.labels.config import LabelConfig, LespsConfig

    with pytest.raises(ConfigError, match=r"^LespsConfig\.center must be one of \['region', 'point'\], got 'middle'$"):
        LespsConfig(center="middle")
    with pytest.raises(ConfigError, match=r"^LabelConfig\.rule must be one of"):
        LabelConfig(rule="grow")
    with pytest.raises(ConfigError, match=r"^MethodConfig\.name must be one of"):
        MethodConfig(name="magic")
