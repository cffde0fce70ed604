"""A live watcher re-plans an outgrown vector index off its worker thread (reidkit.live.index_replan).

On a store of the shared video's first 200 frames (two cameras; enough crops to train PQ's 256 codes), with the
exact-search limit lowered so that its gallery has outgrown it: the old index keeps serving while a thread trains the new one; the worker adopts
it with the rows changed meanwhile (here: a video deleted), and searches on it find stored crops only.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from reidkit.live.index_replan import IndexReplanner
from reidkit.store import index_plan
from reidkit.store.index_sync import CROP_INDEX
from reidkit.store.writer import Store

pytestmark = pytest.mark.slow
DETECTOR_MODEL = Path("models") / "person-detection-retail-0013" / "person-detection-retail-0013.xml"


def test_an_outgrown_index_is_rebuilt_in_a_thread_and_adopted_with_later_changes(
    vtest_video: Path, shared_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reidkit.inference.model_choice import choose_model
    from reidkit.search.ingest import IngestOptions, ingest_video
    from reidkit.video import probe_video
    from reidkit.video.detector_choice import choose_detector

    root = tmp_path / "store"
    detector = choose_detector(None, openvino_model=shared_dir / DETECTOR_MODEL)
    model = choose_model("imagenet", None)
    with Store.open(root, writable=True, create=True) as store:
        for camera, first, end in (("cam1", 0, 100), ("cam2", 100, 200)):
            options = IngestOptions(camera, datetime(2024, 5, 1, 9), 2, first, end, progress=False)
            ingest_video(store, probe_video(vtest_video), options, model.extractor, detector, model.source)
        count, dim = store.count_rows("detections"), store.model.feature_dim  # type: ignore[union-attr]
        assert count >= 256, "PQ training needs 256 crops"
        monkeypatch.setattr(index_plan, "FLAT_MAX_ELEMENTS", (count // 4) * dim)  # still outgrown after the delete
        old = store.vectors.get(CROP_INDEX)
        assert old.kind == "flat" and CROP_INDEX in store.vectors.outgrown()
        replanner = IndexReplanner(store)
        replanner.tick()
        assert replanner.thread is not None
        assert store.vectors.get(CROP_INDEX) is old  # the worker goes on with the old index meanwhile
        replanner.thread.join(timeout=300)
        store.delete_video(store.videos()[0].id)  # committed after the thread read the store
        replanner.tick()
        new = store.vectors.get(CROP_INDEX)
        assert new is not old and new.kind == "ivf_pq" and CROP_INDEX not in store.vectors.outgrown()
        stored = store.detection_ids()
        assert np.array_equal(np.sort(new.ids()), np.sort(stored))  # the deleted video's crops are gone
        store.save_indexes(replan=False)
        replanner.close()  # nothing under way: returns at once
    with Store.open(root) as reader:  # what was saved is the re-planned index, in step with SQLite
        index = reader.vectors.get(CROP_INDEX)
        assert index.kind == "ivf_pq" and index.count == len(stored)
