"""Experiment configs: YAML loading, ``key=value`` overrides, and one-line errors naming the file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from reidkit.config import ExperimentConfig, apply_overrides, config_from_dict, load_config, save_config
from reidkit.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((REPO_ROOT / "src" / "reidkit" / "recipes").glob("*.yaml"))


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    return path


def test_yaml_values_reach_the_dataclasses(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "data:\n  height: 256\n  ids_per_batch: 8\nmodel:\n  backbone: mobilenetv2\n  pretrained: null\n"
        "  kwargs: {parts: [2, 3]}\noptim:\n  name: adam\n  lr: 3.5e-4\n  milestones: [10, 20]\n"
        "train:\n  amp: none\n  max_train_seconds: 30\n",
    )
    config = load_config(path)
    assert config.data.height == 256 and config.data.ids_per_batch == 8
    assert config.data.width == ExperimentConfig().data.width  # untouched keys keep their defaults
    assert config.model.backbone == "mobilenetv2" and config.model.pretrained is None
    assert config.model.kwargs == {"parts": [2, 3]}
    assert config.optim.name == "adam" and config.optim.lr == pytest.approx(3.5e-4)
    assert config.optim.milestones == [10, 20]
    assert isinstance(config.train.max_train_seconds, float) and config.train.max_train_seconds == 30.0


def test_overrides_are_parsed_as_yaml_and_rechecked(tmp_path: Path) -> None:
    config = load_config(
        write(tmp_path, "train:\n  epochs: 80\n"),
        ["train.epochs=5", "model.backbone=mobilenetv2", "optim.milestones=[2, 4]", "model.pretrained=null",
         "model.kwargs.part_stride=2", "train.amp=bf16", "optim.lr=1e-3"],
    )
    assert config.train.epochs == 5
    assert config.model.backbone == "mobilenetv2"
    assert config.optim.milestones == [2, 4]
    assert config.model.pretrained is None
    assert config.model.kwargs == {"part_stride": 2}
    assert config.train.amp == "bf16"
    assert config.optim.lr == pytest.approx(1e-3)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("train:\n  epoch: 5\n", "unknown key 'train.epoch'"),
        ("trian:\n  epochs: 5\n", "unknown key 'trian'"),
        ("train:\n  epochs: five\n", "train.epochs must be an integer"),
        ("train:\n  epochs: 2.5\n", "train.epochs must be an integer"),
        ("train:\n  amp: fp8\n", "train.amp must be one of"),
        ("data:\n  flip: 1\n", "data.flip must be true or false"),
        ("optim:\n  milestones: [40, x]\n", "optim.milestones must be a list of integers"),
        ("train:\n  epochs: 0\n", "train.epochs must be > 0"),
        ("optim:\n  milestones: [60, 40]\n", "must be increasing"),
        ("loss:\n  softmax: 0\n  triplet: 0\n", "both 0"),
        ("data:\n  ids_per_batch: 1\n", "triplet loss needs"),
        ("data: [1, 2]\n", "data must be a mapping"),
        ("- 1\n", "top level must be a mapping"),
        ("train: {epochs: 5\n", "not valid YAML"),
        ("model:\n  freeze_layers: -1\n", "model.freeze_layers must be >= 0"),
        ("model:\n  freeze_layers: 4\n  pretrained: null\n", "would fix randomly initialised layers"),
        ("optim:\n  cosine_epochs: 6\n  milestones: [4]\n", "are two schedules"),
        ("optim:\n  cosine_epochs: 2\n  milestones: []\n  warmup_epochs: 2\n", "must exceed optim.warmup_epochs"),
        ("train:\n  eval_backend: onnx\n", "train.eval_backend must be one of 'torch', 'openvino'"),
    ],
)
def test_bad_files_name_the_file_and_key(tmp_path: Path, text: str, needle: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert needle in message
    assert str(path) in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("train.epochz=5", "unknown key 'train.epochz'"),
        ("trian.epochs=5", "unknown key 'trian'"),
        ("train.epochs=abc", "train.epochs must be an integer"),
        ("epochs=5", "name the section too"),
        ("train.epochs", "expected section.key=value"),
        ("train.epochs.x=1", "'train.epochs' is not a section"),
    ],
)
def test_bad_overrides_name_the_override(tmp_path: Path, override: str, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, ""), [override])
    assert needle in str(info.value)
    assert repr(override) in str(info.value)


def test_overrides_are_validated_together(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ""), ["data.ids_per_batch=1", "loss.triplet=0"])
    assert config.data.ids_per_batch == 1 and config.loss.triplet == 0
    with pytest.raises(ConfigError, match="triplet loss needs"):
        load_config(write(tmp_path, ""), ["data.ids_per_batch=1"])


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "nope.yaml")


def test_saved_config_loads_back_equal(tmp_path: Path) -> None:
    config = apply_overrides(ExperimentConfig(), ["train.epochs=7", "model.kwargs.parts=[2]", "data.max_train_ids=12"])
    save_config(config, tmp_path / "saved.yaml")
    assert load_config(tmp_path / "saved.yaml") == config
    assert config_from_dict(config.to_dict()) == config


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_shipped_recipes_load(path: Path) -> None:
    config = load_config(path)
    assert config.data.height > 0 and config.model.name in ("mgn", "ide", "trinet", "pcb", "bnneck")


def test_paper_recipes_match_the_papers() -> None:
    mgn = load_config("mgn_market1501")
    assert (mgn.data.height, mgn.data.width, mgn.data.ids_per_batch, mgn.data.images_per_id) == (384, 128, 16, 4)
    assert (mgn.optim.name, mgn.optim.lr, mgn.optim.momentum, mgn.optim.weight_decay) == ("sgd", 0.01, 0.9, 5e-4)
    assert (mgn.optim.milestones, mgn.optim.gamma, mgn.train.epochs) == ([40, 60], 0.1, 80)
    assert mgn.loss.triplet_margin == 1.2
    pcb = load_config("pcb_market1501.yaml")
    assert (pcb.data.height, pcb.data.width, pcb.data.batch_size) == (384, 128, 64)
    assert (pcb.optim.name, pcb.optim.lr) == ("sgd", 0.1)
    assert pcb.optim.lr * pcb.optim.backbone_lr_mult == pytest.approx(0.01)
    assert (pcb.train.epochs, pcb.optim.milestones, pcb.loss.triplet) == (60, [40], 0.0)


def test_a_recipe_inherits_its_base_and_wins_over_it(tmp_path: Path) -> None:
    (tmp_path / "family").mkdir()
    (tmp_path / "family" / "grand.yaml").write_text(
        "data:\n  height: 256\n  width: 96\nmodel:\n  kwargs: {parts: [2, 3], stride: 2}\ntrain:\n  epochs: 9\n"
    )
    (tmp_path / "family" / "parent.yaml").write_text(
        "base: grand\ndata:\n  width: 128\nmodel:\n  kwargs: {stride: 1}\noptim:\n  milestones: [10, 20]\n"
    )
    child = write(tmp_path, "base: family/parent.yaml\ndata:\n  height: 384\noptim:\n  milestones: [5]\n")
    config = load_config(child, ["train.epochs=3"])
    assert (config.data.height, config.data.width) == (384, 128)  # each level's keys win over the one below
    assert config.model.kwargs == {"parts": [2, 3], "stride": 1}  # mappings merge key by key
    assert config.optim.milestones == [5] and config.train.epochs == 3  # lists are replaced whole; overrides last
    # The run folder's config.yaml is the whole resolved config, with no base left to look up.
    save_config(config, tmp_path / "saved.yaml")
    assert "base" not in (tmp_path / "saved.yaml").read_text() and load_config(tmp_path / "saved.yaml") == config


def test_a_base_may_be_a_shipped_recipe_by_name(tmp_path: Path) -> None:
    child = write(tmp_path, "base: cuhk03_shared_mgn_mobilenetv2\ntrain:\n  output_dir: mine\n")
    expected = apply_overrides(load_config("cuhk03_shared_mgn_mobilenetv2"), ["train.output_dir=mine"])
    assert load_config(child) == expected


@pytest.mark.parametrize(
    ("files", "needle", "blamed"),
    [
        ({"exp.yaml": "base: nowhere\n"}, "base 'nowhere' is neither a file beside it nor a shipped recipe",
         "exp.yaml"),
        ({"exp.yaml": "base: a.yaml\n", "a.yaml": "base: exp\n"}, "makes a cycle (exp.yaml -> a.yaml -> exp.yaml)",
         "a.yaml"),
        ({"exp.yaml": "base: exp.yaml\n"}, "makes a cycle", "exp.yaml"),
        ({"exp.yaml": "base: [a]\n"}, "base must be a recipe name or a path", "exp.yaml"),
        ({"exp.yaml": "base: a\n", "a.yaml": "train:\n  epochz: 3\n"}, "unknown key 'train.epochz'", "a.yaml"),
        ({"exp.yaml": "base: a\n", "a.yaml": "train: {epochs: 5\n"}, "not valid YAML", "a.yaml"),
    ],
)
def test_bad_bases_name_the_file_in_one_line(tmp_path: Path, files: dict[str, str], needle: str, blamed: str) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "exp.yaml")
    message = str(info.value)
    assert needle in message and message.startswith(f"{tmp_path / blamed}: ") and "\n" not in message


def flat(tree: dict, prefix: str = "") -> dict:
    """``{"data.height": 256, ...}``; ``model.kwargs`` stays one value (the model's constructor arguments)."""
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict) and key != "kwargs":
            out.update(flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


# How each recipe of the shared CUHK03 family departs from its base, after inheritance: every other resolved value
# is the base's. The values are those of the recipes before they inherited (each used to spell out everything).
SHARED_CUHK03_DEPARTURES: dict[str, dict] = {
    "cuhk03_shared_mgn_mobilenetv2": {"model.backbone": "mobilenetv2"},
    "cuhk03_shared_bnneck_mobilenetv2": {
        "model.name": "bnneck", "model.backbone": "mobilenetv2", "model.kwargs": {"last_stride": 1},
        "loss.triplet_margin": 0.3,
    },
    "cuhk03_shared_ide_mobilenetv2": {
        "model.name": "ide", "model.backbone": "mobilenetv2", "loss.triplet": 0.0, "optim.name": "sgd",
        "optim.lr": 0.01,
    },
    "cuhk03_shared_pcb_mobilenetv2": {
        "model.name": "pcb", "model.backbone": "mobilenetv2", "model.kwargs": {"stripes": 6, "last_stride": 1},
        "loss.triplet": 0.0, "optim.name": "sgd", "optim.lr": 0.01,
    },
    "cuhk03_shared_trinet_mobilenetv2": {
        "model.name": "trinet", "model.backbone": "mobilenetv2", "loss.softmax": 0.0, "loss.label_smoothing": 0.0,
        "loss.soft_margin": True,
    },
    "cuhk03_shared_mgn_resnet50_scratch": {
        "model.pretrained": None, "optim.milestones": [80, 100], "train.epochs": 120,
    },
    "cuhk03_shared_mgn_mobilenetv2_cpu": {
        "data.height": 128, "data.width": 64, "data.ids_per_batch": 8, "data.workers": 0, "data.pad": 5,
        "model.backbone": "mobilenetv2", "model.freeze_layers": 7, "loss.head_reduction": "mean", "optim.lr": 7e-4,
        "optim.backbone_lr_mult": 0.5, "optim.milestones": [], "optim.cosine_epochs": 60, "train.eval_every": 60,
        "train.amp": "bf16", "train.log_every": 10, "train.eval_backend": "openvino",
    },
}


def test_the_shared_cuhk03_family_resolves_to_its_settings() -> None:
    base = flat(load_config("cuhk03_shared_base").to_dict())
    assert {key: base[key] for key in (
        "data.root", "data.height", "data.width", "data.ids_per_batch", "data.images_per_id", "data.workers",
        "data.cache_in_memory", "data.pad", "data.random_erasing", "loss.label_smoothing", "loss.triplet_margin",
        "optim.name", "optim.lr", "optim.weight_decay", "optim.milestones", "train.epochs", "train.eval_every",
    )} == {
        "data.root": "data/cuhk03-detected-64x128", "data.height": 256, "data.width": 128, "data.ids_per_batch": 16,
        "data.images_per_id": 4, "data.workers": 8, "data.cache_in_memory": True, "data.pad": 10,
        "data.random_erasing": 0.5, "loss.label_smoothing": 0.1, "loss.triplet_margin": 1.2, "optim.name": "adam",
        "optim.lr": 3.5e-4, "optim.weight_decay": 5e-4, "optim.milestones": [40], "train.epochs": 60,
        "train.eval_every": 10,
    }
    family = sorted(p.stem for p in CONFIGS if p.stem.startswith("cuhk03_shared_") and p.stem != "cuhk03_shared_base")
    assert family == sorted(SHARED_CUHK03_DEPARTURES)
    for name, departures in SHARED_CUHK03_DEPARTURES.items():
        resolved = flat(load_config(name).to_dict())
        changed = {key: value for key, value in resolved.items() if value != base[key]}
        assert changed == {**departures, "train.output_dir": f"runs/{name}"}, name
