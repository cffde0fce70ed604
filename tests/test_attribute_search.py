"""Attributes in the store and search by description, through the library, the CLI, a reindex and a schema
migration, on a store of the shared video ingested with the shipped model (which has the attribute head)."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from reidkit.attribute_schema import MARKET1501, aggregate_probabilities, description_log_probability, group_slices
from reidkit.errors import ConfigError, StoreError
from reidkit.search.describe import DESCRIPTION_WEIGHT, rescore_by_description, search_by_description
from reidkit.search.search import search_store, track_query
from reidkit.store.filters import SearchFilters
from reidkit.store.reader import StoreReader
from reidkit.store.writer import Store

REIDKIT = Path(sys.executable).with_name("reidkit")


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(REIDKIT), *args], capture_output=True, text=True, timeout=300)


def test_every_crop_and_track_holds_attributes_from_the_embedding_pass(attribute_store: Path) -> None:
    with StoreReader.open(attribute_store) as store:
        assert store.attribute_schema is MARKET1501 and store.model.attribute_schema == "market1501"
        detection_ids = store.detection_ids()
        ids, crops = store.detection_attributes(detection_ids)
        np.testing.assert_array_equal(ids, np.sort(detection_ids))
        for block in group_slices(MARKET1501.sizes):
            np.testing.assert_allclose(crops[:, block].sum(axis=1), 1.0, atol=1e-4)
        track_ids, tracks = store.track_attributes()
        np.testing.assert_array_equal(track_ids, np.sort(store.track_ids()))
        for track_id, row in zip(track_ids.tolist(), tracks, strict=True):
            mine = [d.id for d in store.track_detections(track_id)]
            expected = aggregate_probabilities(MARKET1501, crops[np.isin(ids, mine)])
            np.testing.assert_allclose(row, expected, atol=1e-6)
        # The crops' attributes agree with the model run on the stored crop files (JPEG-compressed: loosely).
        from reidkit.inference import FeatureExtractor

        first = store.detections([int(ids[0])])[int(ids[0])]
        again = FeatureExtractor("market1501_mgn_mobilenetv2", attributes=True, progress=False).extract(
            [store.crop_file(first)])[1]
        assert np.abs(again[0] - crops[0]).max() < 0.2


def test_a_description_ranks_tracks_by_its_joint_probability(attribute_store: Path) -> None:
    description = {"upper": "black", "lower_length": "long"}
    with StoreReader.open(attribute_store) as store:
        result = search_by_description(store, description, top_k=50)
        track_ids, probabilities = store.track_attributes()
        joint = dict(zip(track_ids.tolist(), np.exp(description_log_probability(MARKET1501, probabilities,
                                                                                 description)).tolist()))
        assert [hit.track.id for hit in result.hits] == sorted(joint, key=lambda t: -joint[t])[:50]
        assert all(hit.score == pytest.approx(joint[hit.track.id], rel=1e-5) for hit in result.hits)
        assert all(hit.attributes and set(hit.attributes) == set(MARKET1501.names) for hit in result.hits)
        assert result.trajectory and result.trajectory[0].camera == "cam1"
        assert all(hit.person_id is None for hit in result.hits)  # not clustered: no person to name
        late = SearchFilters(after=datetime(2024, 5, 1, 9, 0, 4))
        filtered = search_by_description(store, description, top_k=50, filters=late)
        assert filtered.hits and all(hit.best.wall_time >= late.after for hit in filtered.hits)
        assert len(filtered.hits) < len(result.hits)


def test_a_photo_search_with_a_description_ranks_by_appearance_and_description(attribute_store: Path) -> None:
    with StoreReader.open(attribute_store) as store:
        track_id = int(store.track_ids()[0])
        plain = search_store(store, track_query(store, track_id), top_k=15, exclude_track=track_id)
        last = plain.hits[-1]  # describe the least alike hit: the description must be able to lift it
        description = {name: value for name, (value, _) in last.attributes.items() if name in ("upper", "lower")}
        mixed = rescore_by_description(store, plain, description, top_k=5)
        ids, probabilities = store.track_attributes(hit.track.id for hit in plain.hits)
        log_p = dict(zip(ids.tolist(), description_log_probability(MARKET1501, probabilities, description)))
        expected = sorted(plain.hits, key=lambda hit: -(hit.score + DESCRIPTION_WEIGHT * log_p[hit.track.id]))
        assert [hit.track.id for hit in mixed.hits] == [hit.track.id for hit in expected[:5]]
        assert [hit.rank for hit in mixed.hits] == [1, 2, 3, 4, 5]
        for hit in mixed.hits:
            assert hit.description_probability == pytest.approx(np.exp(log_p[hit.track.id]), rel=1e-5)
        assert any("ranked by appearance and the description" in note for note in mixed.notes)


def test_the_cli_searches_by_description_and_refuses_bad_ones_in_one_line(attribute_store: Path,
                                                                          small_store: Path) -> None:
    done = _run("search", "--db", str(attribute_store), "--attr", "upper=black", "--attr", "gender=male", "--json")
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["query"] == {"kind": "description", "source": "upper=black gender=male", "box": None,
                               "track_id": None}
    scores = [hit["score"] for hit in answer["hits"]]
    assert scores == sorted(scores, reverse=True) and answer["hits"][0]["attributes"]["upper"]["value"]
    table = _run("search", "--db", str(attribute_store), "--attr", "upper=black")
    assert table.returncode == 0 and "by the description's probability" in table.stdout
    for args, words in [
        (["--attr", "upper=pink"], "--attr 'upper=pink': upper is one of black, white"),
        (["--attr", "colour=red"], "no attribute 'colour'; choices: gender=male|female"),
        (["--attr", "upper=red", "--rerank"], "--rerank re-orders by appearance"),
        (["--attr", "upper=red", "--camera", "cam9"], "--camera 'cam9': no such camera"),
        (["--attr", "upper=red", "--after", "2024-05-02T00:00:00", "--before", "2024-05-01T00:00:00"],
         "is later than --before"),
    ]:
        refused = _run("search", "--db", str(attribute_store), *args)
        assert refused.returncode == 2 and words in refused.stderr, refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1 and "Traceback" not in refused.stderr
    without = _run("search", "--db", str(small_store), "--attr", "upper=red")
    assert without.returncode == 2 and "holds no attributes" in without.stderr and "reindex" in without.stderr


def test_reindex_adds_attributes_to_a_store_made_without_them(small_store: Path, tmp_path: Path) -> None:
    copy = tmp_path / "store"
    shutil.copytree(small_store, copy)
    with StoreReader.open(copy) as store:
        assert store.attribute_schema is None
        with pytest.raises(StoreError, match="holds no attributes"):
            search_by_description(store, {"upper": "red"})
    done = _run("reindex", "--db", str(copy), "--quiet")
    assert done.returncode == 0, done.stderr
    with StoreReader.open(copy) as store:
        assert store.attribute_schema is MARKET1501
        assert len(store.track_attributes()[0]) == len(store.track_ids())
        assert search_by_description(store, {"upper": "black"}, top_k=3).hits


def test_a_version_3_store_is_migrated_and_read_as_it_is(small_store: Path, tmp_path: Path) -> None:
    copy = tmp_path / "store"
    shutil.copytree(small_store, copy)
    with sqlite3.connect(copy / "reidkit.sqlite") as db:
        db.executescript("DROP TABLE detection_attributes; DROP TABLE track_attributes; "
                         "UPDATE meta SET value = '3' WHERE key = 'schema_version';")
    with StoreReader.open(copy) as store:  # a reader reads the old version as it is
        assert store.attribute_schema is None and store.meta_value("schema_version") == "3"
        with pytest.raises(ConfigError, match="at least one"):
            MARKET1501.parse_description([])
    with Store.open(copy, writable=True) as store:
        assert store.meta_value("schema_version") == "4"
        assert store.count_rows("detection_attributes") == 0 and store.count_rows("track_attributes") == 0


def test_the_api_searches_by_description_behind_tokens_with_audit(attribute_store: Path,
                                                                   serve: Callable[..., str]) -> None:
    import httpx

    from reidkit.service import audit
    from reidkit.service.access import Role, create_token
    from reidkit.service.settings import ServiceSettings

    url = serve(attribute_store, ServiceSettings(requests_per_minute=10_000, embed_backend="torch"))
    viewer = {"Authorization": f"Bearer {create_token(attribute_store, Role.viewer, 'viewer')[1]}"}
    with httpx.Client(base_url=url + "/api/v1", timeout=120) as client:
        form = {"attributes": ["upper=black", "gender=male"], "top_k": "5"}
        assert client.post("/search/attributes", data=form).status_code == 401
        answer = client.post("/search/attributes", data=form, headers=viewer)
        assert answer.status_code == 200, answer.text
        with StoreReader.open(attribute_store) as store:
            expected = search_by_description(store, {"upper": "black", "gender": "male"}, top_k=5)
        assert [h["track_id"] for h in answer.json()["hits"]] == [hit.track.id for hit in expected.hits]
        assert answer.json()["hits"][0]["attributes"]["gender"]["value"] in ("male", "female")
        bad = client.post("/search/attributes", data={"attributes": "upper=pink"}, headers=viewer)
        assert bad.status_code == 400 and "attributes 'upper=pink': upper is one of" in bad.json()["error"]["message"]
        groups = client.get("/attributes", headers=viewer).json()
        assert groups["schema_name"] == "market1501" and [g["name"] for g in groups["groups"]] == MARKET1501.names
        track_id = answer.json()["hits"][0]["track_id"]
        narrowed = client.post(f"/search/track/{track_id}", data={"attributes": "upper=black"}, headers=viewer)
        assert narrowed.status_code == 200 and narrowed.json()["query"]["source"].endswith("'upper=black'")
    entry = next(e for e in reversed(audit.read(attribute_store)) if e.action == "search.attributes")
    assert "'upper=black' 'gender=male'" in entry.target and entry.hits == len(expected.hits)


def test_description_hits_name_their_person_once_the_store_is_clustered(attribute_store: Path, tmp_path: Path) -> None:
    copy = tmp_path / "store"
    shutil.copytree(attribute_store, copy)
    done = _run("cluster", "--db", str(copy))
    assert done.returncode == 0, done.stderr
    with StoreReader.open(copy) as store:
        hits = search_by_description(store, {"lower_length": "long"}, top_k=50).hits
        placed = [hit for hit in hits if hit.person_id is not None]
        assert placed and {hit.person_id for hit in placed} <= {p for (p,) in store.db.execute("SELECT id FROM people")}
