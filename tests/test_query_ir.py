"""The torch-free query path of ``reidkit search`` (``inference.query_ir``): the cached IR of the store's model, fed
by preprocessing redone in PIL and NumPy, gives the torch path's features, and the search's answer is the same."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from reidkit.cli.main import app
from reidkit.inference.model_choice import choose_model, choose_query_model
from reidkit.inference.extractor import to_pil
from reidkit.inference.query_ir import IrQueryEmbedder, QueryRecord, find_query_ir, preprocess, resize_uint8
from reidkit.store.reader import StoreReader
from reidkit.store.rows import normalise_rows
from reidkit.video import read_frame


@pytest.fixture(scope="module")
def crops(vtest_video: Path) -> list[np.ndarray]:
    """Real people of the shared video at the sizes a query comes in: smaller than the model's input (upsampled),
    about its size, much larger (downsampled), and a squat box."""
    frame = read_frame(vtest_video, 120).image
    boxes = [(330, 120, 360, 190), (100, 150, 170, 300), (0, 0, 400, 576), (200, 200, 330, 260)]
    return [np.ascontiguousarray(frame[y0:y1, x0:x1]) for x0, y0, x1, y1 in boxes]


def test_the_cached_ir_embeds_as_the_torch_path_does(crops: list[np.ndarray]) -> None:
    made = choose_model(None, None, backend="openvino")  # converts the shipped model and leaves its IR and record
    found = find_query_ir(made.extractor.model_id)
    assert found is not None
    xml, record = found
    assert record.model_id == made.extractor.model_id and record.feature_dim == made.extractor.feature_dim
    torch_extractor = choose_model(None, None, backend="torch").extractor

    # The preprocessing is torchvision's, to the bit: the same grey levels after the resize.
    expected = np.stack([torch_extractor.transform(to_pil(crop)).numpy() for crop in crops])
    got = np.stack([preprocess(crop, record) for crop in crops])
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() <= 1e-6

    ir = IrQueryEmbedder(xml, record)
    assert (ir.model_id, ir.feature_dim) == (made.extractor.model_id, made.extractor.feature_dim)
    cosine = (normalise_rows(ir(crops)) * normalise_rows(torch_extractor(crops))).sum(axis=1)
    assert cosine.min() > 1 - 1e-5, cosine


def test_the_resize_is_torchvisions_for_any_size_up_or_down() -> None:
    from torchvision.transforms import v2

    rng = np.random.default_rng(0)
    resize = v2.Compose([v2.ToImage(), v2.Resize((128, 64), antialias=True)])
    sizes = [(20, 10), (128, 64), (127, 65), (300, 90), (576, 400), (64, 200), *rng.integers(8, 700, (12, 2))]
    for height, width in sizes:
        image = rng.integers(0, 256, (int(height), int(width), 3), dtype=np.uint8)
        expected = resize(to_pil(image)).numpy().transpose(1, 2, 0)
        assert np.array_equal(resize_uint8(image, 128, 64), expected), (height, width)


def test_a_record_that_does_not_match_its_id_or_lacks_weights_is_not_used(tmp_path: Path) -> None:
    import openvino

    from reidkit.inference.query_ir import QUERY_RECORD, openvino_cache_folder

    folder = openvino_cache_folder(openvino.__version__) / "feedbeef00000000-128x64"
    folder.mkdir(parents=True)
    (folder / QUERY_RECORD).write_text(QueryRecord("another", (128, 64), (0.5,) * 3, (0.2,) * 3, 8).to_json())
    (folder / "model.xml").write_text("<net/>")
    assert find_query_ir("feedbeef00000000") is None  # the record names another model
    (folder / QUERY_RECORD).write_text(QueryRecord("feedbeef00000000", (128, 64), (0.5,) * 3, (0.2,) * 3, 8).to_json())
    assert find_query_ir("feedbeef00000000") is None  # no model.bin beside the .xml
    (folder / QUERY_RECORD).write_text("{not json")
    assert find_query_ir("feedbeef00000000") is None


def test_search_answers_alike_by_the_ir_and_by_torch(attribute_store: Path) -> None:
    with StoreReader.open(attribute_store) as store:
        held = store.model
        crop = max(store.track_detections(int(store.track_ids()[0])), key=lambda row: row.quality)
        photo = store.crop_file(crop)
    assert held is not None
    chosen = choose_query_model(None, held)  # the first search leaves the IR; this one finds it
    chosen = choose_query_model(None, held)
    assert isinstance(chosen.embedder, IrQueryEmbedder) and chosen.source == held.source
    runner = CliRunner()
    answers = {}
    for backend in ([], ["--embed-backend", "torch"]):
        done = runner.invoke(app, ["search", str(photo), "--db", str(attribute_store), "--json", *backend])
        assert done.exit_code == 0, done.output
        answers[bool(backend)] = json.loads(done.output)["hits"]
    by_ir, by_torch = answers[False], answers[True]
    assert [hit["track_id"] for hit in by_ir] == [hit["track_id"] for hit in by_torch]
    assert np.allclose([hit["score"] for hit in by_ir], [hit["score"] for hit in by_torch], atol=2e-5)
    tables = [runner.invoke(app, ["search", str(photo), "--db", str(attribute_store), *backend]).output
              for backend in ([], ["--embed-backend", "torch"])]
    assert tables[0] == tables[1]  # what the user reads: the same hits, the same scores
