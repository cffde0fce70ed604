"""The ``reidkit viz`` pictures drawn from the shared CUHK03 benchmark, checked by reading the images back.

Models: MobileNetV2 on its ImageNet weights (no ReID training) and one trained here for two short epochs; what is
asserted holds for any real model, not only for a good one (docs/visualisation.md).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from reidkit.cli.main import app
from reidkit.config import ExperimentConfig, apply_overrides
from reidkit.data import ReidDataset
from reidkit.data.subset import subset_identities
from reidkit.errors import ConfigError, ReidkitError
from reidkit.evaluation import save_features
from reidkit.evaluation.market_protocol import JUNK_PID
from reidkit.inference import FeatureExtractor, evaluate_on_dataset, untrained_model
from reidkit.inference.activation_maps import activation_maps
from reidkit.models.model_file import model_payload, save_checkpoint
from reidkit.training.trainer import Trainer
from reidkit.viz.attention import height_shares, plot_activation_maps, scaled
from reidkit.viz.curves import read_metrics_csv
from reidkit.viz.embedding import sample_identities
from reidkit.viz.figure_files import DPI, figure_path
from reidkit.viz.ranked_list import QUERY, RIGHT, WRONG, plot_ranked_lists, random_queries

RUNNER = CliRunner()
TEST_IDS = 12


def _rgb(hex_colour: str) -> np.ndarray:
    return np.array([int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)])


def _png(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        assert image.format == "PNG"
        return np.asarray(image.convert("RGB")).astype(int)


def _not_blank(pixels: np.ndarray, colours: int = 1000, background: float = 0.9) -> None:
    """At most ``background`` of the image is its most common colour, and it has ``colours`` colours or more."""
    flat = pixels.reshape(-1, 3)
    found, counts = np.unique(flat, axis=0, return_counts=True)
    assert counts.max() <= background * len(flat) and len(found) >= colours, (counts.max() / len(flat), len(found))


@pytest.fixture(scope="module")
def test_split(cuhk03_dataset: ReidDataset) -> ReidDataset:
    return subset_identities(cuhk03_dataset, None, TEST_IDS)


@pytest.fixture(scope="module")
def imagenet_bnneck(tmp_path_factory: pytest.TempPathFactory) -> Path:
    net, card = untrained_model("bnneck", "mobilenetv2", 128, 64)
    path = tmp_path_factory.mktemp("models") / "bnneck_imagenet.pt"
    save_checkpoint(path, model_payload(net, card))
    return path


@pytest.fixture(scope="module")
def trained_run(cuhk03_dataset: ReidDataset, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """MGN-MobileNetV2 (ImageNet init, paper's part stride 1) trained for 2 short epochs: a real run folder."""
    out = tmp_path_factory.mktemp("run")
    config = apply_overrides(
        ExperimentConfig(),
        ["data.height=128", "data.width=64", "data.workers=0", "data.ids_per_batch=4", "data.images_per_id=2",
         "model.backbone=mobilenetv2", "model.freeze_layers=7", "train.epochs=2", f"train.output_dir={out}",
         "train.progress=false", "train.tensorboard=false", "train.eval_every=1", "optim.name=adam", "optim.lr=1e-3"],
    )
    Trainer(config, dataset=subset_identities(cuhk03_dataset, 8, 2), echo=lambda _: None).fit()
    return out


@pytest.mark.slow
def test_ranked_list_border_colours_read_from_the_png_match_the_identities(
    cuhk03_dataset: ReidDataset, imagenet_bnneck: Path, tmp_path: Path
) -> None:
    # 3 identities x 2 cameras x 4 gallery crops: each query counts the 20 crops not of its own (identity, camera)
    # pair, 4 of them its own identity; a top-20 shows them all, so each line must hold exactly 4 green borders.
    run = evaluate_on_dataset(FeatureExtractor(imagenet_bnneck, progress=False), subset_identities(cuhk03_dataset,
                                                                                                   None, 3))
    top_k = 20
    rows = random_queries(len(run.query), 4, seed=1)
    assert rows == random_queries(len(run.query), 4, seed=1) != random_queries(len(run.query), 4, seed=2)
    figure = plot_ranked_lists(run.distmat, run.query, run.gallery, rows, tmp_path / "fig4.png", top_k=top_k)
    pixels = _png(figure.path)
    assert pixels.shape[0] > 4 * 1.6 * DPI and pixels.shape[1] > (top_k + 1) * 0.8 * DPI
    _not_blank(pixels)
    for row in rows:
        panels = [p for p in figure.panels if p.query_row == row]
        query = run.query[row]
        assert [p.rank for p in panels] == list(range(top_k + 1)) and panels[0].record == query
        distances = [p.distance for p in panels[1:]]
        assert distances == sorted(distances)  # type: ignore[type-var]
        greens = 0
        for panel in panels:
            if panel.rank:  # the protocol's exclusions: no junk, not the query's identity in its own camera
                assert panel.record.pid != JUNK_PID
                assert (panel.record.pid, panel.record.camid) != (query.pid, query.camid)
            expected = QUERY if panel.rank == 0 else RIGHT if panel.record.pid == query.pid else WRONG
            left, top, right, bottom = panel.box
            middle_x, middle_y = round((left + right) / 2), round((top + bottom) / 2)
            for x, y in ((round(left), middle_y), (round(right), middle_y), (middle_x, round(top)),
                         (middle_x, round(bottom))):
                assert np.abs(pixels[y, x] - _rgb(expected)).max() <= 40, (panel.rank, x, y, pixels[y, x])
            greens += expected == RIGHT
        assert greens == 4


@pytest.mark.slow
def test_activation_maps_of_mgn_branches(trained_run: Path, test_split: ReidDataset, tmp_path: Path) -> None:
    crops = [r.path for r in test_split.query[:4]]
    net, card = untrained_model("mgn", "mobilenetv2", 128, 64)
    before = activation_maps(net, crops, card=card)
    after = activation_maps(trained_run / "last.pt", crops)
    for item in before + after:
        names = [b.name for b in item.branches]
        assert names == ["global", "part-2", "part-3"] and [b.stripes for b in item.branches] == [1, 2, 3]
        assert item.image.shape == (128, 64, 3)
        energy = {b.name: b.energy for b in item.branches}
        assert energy["global"].shape == (4, 2) and energy["part-3"].shape == (8, 4)  # stride 32 vs 16
        # Not flat over the height: some third of the crop holds clearly more of the part-3 energy than another.
        shares = height_shares(energy["part-3"])
        assert max(shares) - min(shares) > 0.05, shares
        assert np.abs(np.subtract(height_shares(energy["global"]), shares)).max() > 0.01
        # --per-stripe: each stripe (rows by centre: 0-2, 3-4, 5-7 of 8, as the dashed lines) peaks at 1
        per_stripe = scaled(energy["part-3"], 3)
        assert [per_stripe[rows].max() for rows in (slice(0, 3), slice(3, 5), slice(5, 8))] == [1, 1, 1]
        assert scaled(energy["part-3"]).max() == 1 and np.array_equal(per_stripe > 0, energy["part-3"] > 0)
    for item in before:  # the part branches start as copies of one ImageNet branch: identical maps ...
        assert np.array_equal(item.branches[1].energy, item.branches[2].energy)
    for item in after:  # ... and training, with a loss per stripe, makes them differ
        part2, part3 = item.branches[1].energy, item.branches[2].energy
        assert np.abs(part2 - part3).max() > 1e-3 * part3.max()
    labels = [p.name for p in crops]
    path = plot_activation_maps(after, tmp_path / "fig5.png", labels=labels, title="t", per_stripe=True)
    pixels = _png(path)
    assert pixels.shape[0] > 4 * 2 * DPI and pixels.shape[1] > 4 * DPI
    _not_blank(pixels)


def test_activation_map_of_a_single_branch_model(imagenet_bnneck: Path, test_split: ReidDataset) -> None:
    (item,) = activation_maps(imagenet_bnneck, [test_split.query[0].path])
    assert [(b.name, b.stripes) for b in item.branches] == [("backbone", 1)]
    assert item.branches[0].energy.shape == (8, 4) and item.branches[0].energy.std() > 0  # BNNeck: last stride 1


def test_cli_viz_rank_attention_and_svg(
    imagenet_bnneck: Path, trained_run: Path, cuhk03_root: Path, test_split: ReidDataset, tmp_path: Path
) -> None:
    out = tmp_path / "rank.svg"
    done = RUNNER.invoke(app, ["viz", "rank", "--checkpoint", str(imagenet_bnneck), "--root", str(cuhk03_root),
                               "--max-ids", "6", "--queries", "2", "--top-k", "4", "--workers", "0",
                               "--out", str(out)])
    assert done.exit_code == 0, done.output
    assert "queries [" in done.output and "rank1" in done.output
    assert out.read_text().lstrip().startswith("<?xml") and "<svg" in out.read_text()
    crops = [str(r.path) for r in test_split.query[:2]]
    done = RUNNER.invoke(app, ["viz", "attention", "--checkpoint", str(trained_run / "last.pt"), *crops,
                               "--out", str(tmp_path / "maps"), "--format", "png"])
    assert done.exit_code == 0, done.output
    _not_blank(_png(tmp_path / "maps.png"))
    assert done.output.count("part-3 ") == 2


def test_cli_viz_curves_from_a_run_folder(trained_run: Path, tmp_path: Path) -> None:
    rows = read_metrics_csv(trained_run / "metrics.csv")
    assert [row["epoch"] for row in rows] == [1, 2] and 0 <= rows[-1]["mAP"] <= 1
    done = RUNNER.invoke(app, ["viz", "curves", str(trained_run), "--out", str(tmp_path / "curves.png")])
    assert done.exit_code == 0, done.output
    pixels = _png(tmp_path / "curves.png")
    assert pixels.shape == (400, 1500, 3)
    _not_blank(pixels, colours=50, background=0.97)
    drawn = np.abs(pixels - _rgb("#1f77b4")).max(axis=2) < 30  # the total loss: matplotlib's first line colour
    assert drawn.sum() > 200


def test_cli_viz_embedding_samples_whole_identities(
    test_split: ReidDataset, imagenet_bnneck: Path, tmp_path: Path
) -> None:
    gallery = test_split.gallery
    features = FeatureExtractor(imagenet_bnneck, progress=False)([r.path for r in gallery])
    pids = np.array([r.pid for r in gallery])
    file = save_features(tmp_path / "g.npz", features, pids, [r.camid for r in gallery])
    rows = sample_identities(pids, 40, seed=0)
    kept = set(pids[rows].tolist())
    assert 0 < len(rows) <= 40 and all((pids[rows] == p).sum() == (pids == p).sum() for p in kept)
    assert not np.array_equal(rows, sample_identities(pids, 40, seed=1))
    done = RUNNER.invoke(app, ["viz", "embedding", str(file), "--max-points", "40", "--out", str(tmp_path / "e.png")])
    assert done.exit_code == 0, done.output
    assert f"{len(rows)} of {len(gallery)} crops, {len(kept)} identities" in done.output
    _not_blank(_png(tmp_path / "e.png"), colours=50, background=0.99)


def test_figure_format_comes_from_the_suffix_or_the_option(tmp_path: Path) -> None:
    assert figure_path(tmp_path / "a.svg") == tmp_path / "a.svg"
    assert figure_path(tmp_path / "a", "svg") == tmp_path / "a.svg"
    assert figure_path(tmp_path / "a") == tmp_path / "a.png"
    for out, fmt in ((tmp_path / "a.png", "svg"), (tmp_path / "a.jpg", None), (tmp_path / "a", "pdf")):
        with pytest.raises(ConfigError):
            figure_path(out, fmt)


def test_cli_viz_refuses_bad_input_in_one_line(tmp_path: Path) -> None:
    done = RUNNER.invoke(app, ["viz", "curves", str(tmp_path)])
    assert isinstance(done.exception, ReidkitError) and "metrics.csv" in str(done.exception)
    (tmp_path / "metrics.csv").write_text("loss\n1.0\n")
    done = RUNNER.invoke(app, ["viz", "curves", str(tmp_path)])
    assert isinstance(done.exception, ReidkitError) and "no epoch rows" in str(done.exception)
    done = RUNNER.invoke(app, ["viz", "embedding", str(tmp_path / "none.npz"), "--out", str(tmp_path / "e.pdf")])
    assert isinstance(done.exception, ConfigError) and "e.pdf" in str(done.exception)
