"""People in a store: ``reidkit cluster --db`` on a real two-camera store (the shared video, ingested with the real
detector and MGN-MobileNetV2 on ImageNet weights: plumbing, not accuracy), what it stores, the constraints it must
honour, atomic re-runs, the migration of a schema-2 store, and trajectories built from identities."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from reidkit.cli.main import app
from reidkit.errors import StoreError
from reidkit.search.evidence import DifferentPeople
from reidkit.search.grouping import group_store
from reidkit.search.identity import drop_impossible_moves, person_trajectory
from reidkit.search.people import clustering, memberships, people, person, save_people
from reidkit.search.search import search_store, track_query
from reidkit.search.trajectory import Sighting
from reidkit.store.rows import epoch_seconds
from reidkit.store.schema import SCHEMA_VERSION
from reidkit.store.writer import Store

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def clustered(two_camera_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A copy of the two-camera store, clustered by the real command."""
    root = tmp_path_factory.mktemp("people") / "store"
    shutil.copytree(two_camera_store, root)
    ran = CliRunner().invoke(app, ["cluster", "--db", str(root)])
    assert ran.exit_code == 0, ran.output
    with Store.open(root) as store:
        tracks, found = store.count_rows("tracks"), len(people(store))
    assert tracks >= 6 and 1 <= found <= tracks
    assert ran.output.startswith(f"{root}: {tracks} tracks -> {found} people")
    yield root


def overlapping_pairs(store: Store) -> list[tuple[int, int]]:
    """Track pairs of one video that overlap in time, straight from SQL (independent of the code under test)."""
    return store.db.execute(
        "SELECT a.id, b.id FROM tracks a JOIN tracks b ON a.video_id = b.video_id AND a.id < b.id "
        "AND a.first_frame <= b.last_frame AND b.first_frame <= a.last_frame"
    ).fetchall()


def test_cluster_db_stores_a_person_for_every_track_with_params_and_model(clustered: Path) -> None:
    with Store.open(clustered) as store:
        held = clustering(store)
        assert held is not None and store.model is not None
        assert held.model_id == store.model.model_id and held.commit_seq == store.commit_seq
        track_ids = store.track_ids().tolist()
        placed = memberships(store, track_ids)
        assert sorted(placed) == track_ids  # every track is someone, if only a person of its own
        assert all(0.0 <= m.confidence <= 1.0 for m in placed.values())
        everyone = people(store)
        assert [p.id for p in everyone] == list(range(1, len(everyone) + 1))
        firsts = [epoch_seconds(p.tracks[0].first_seen) for p in everyone]  # type: ignore[arg-type]
        assert firsts == sorted(firsts)  # numbered by first sighting
        assert sum(len(p.tracks) for p in everyone) == len(track_ids)
        evidence = DifferentPeople.from_params(held.params["different_people_hit_scores"])
        assert evidence is not None and evidence.pairs == 4 * len(overlapping_pairs(store))
        assert held.params["cannot_link_pairs"] == len(overlapping_pairs(store))
    shown = CliRunner().invoke(app, ["people", "--db", str(clustered)])
    assert shown.exit_code == 0, shown.output
    assert f"{len(everyone)} people" in shown.output


def test_two_tracks_overlapping_in_one_video_never_share_a_person(clustered: Path) -> None:
    with Store.open(clustered) as store:
        pairs = overlapping_pairs(store)
        assert len(pairs) >= 5  # the clip has several people at once: the test is not vacuous
        placed = memberships(store, store.track_ids().tolist())
        shared = [(a, b) for a, b in pairs if placed[a].person_id == placed[b].person_id]
        assert shared == []


def test_a_rerun_replaces_the_clustering_in_one_transaction(clustered: Path, tmp_path: Path) -> None:
    root = tmp_path / "store"
    shutil.copytree(clustered, root)
    with Store.open(root, writable=True) as store:
        before = {t: m.person_id for t, m in memberships(store, store.track_ids().tolist()).items()}
        held = clustering(store)
        assert held is not None
        # a failing re-run (a track that is not in the store: the foreign key refuses it midway) changes nothing
        bad = {int(t): (0, 1.0) for t in store.track_ids().tolist()} | {10**9: (1, 1.0)}
        with pytest.raises(sqlite3.IntegrityError):
            save_people(store, "broken", {}, bad)
        assert clustering(store) == held
        assert {t: m.person_id for t, m in memberships(store, list(before)).items()} == before
        # a successful one replaces every row: one person per track now, nothing of the old one left
        save_people(store, "one-each", {"why": "test"}, {t: (t, 0.5) for t in before})
        assert clustering(store).method == "one-each"  # type: ignore[union-attr]
        assert store.count_rows("people") == store.count_rows("track_people") == len(before)
        assert group_store(store).people == len(people(store))  # and back, again whole


def test_camera_aware_clustering_of_a_store_reads_its_cameras(clustered: Path, tmp_path: Path) -> None:
    root = tmp_path / "store"
    shutil.copytree(clustered, root)
    ran = CliRunner().invoke(app, ["cluster", "--db", str(root), "--camera-aware"])
    assert ran.exit_code == 0, ran.output
    with Store.open(root) as store:
        held = clustering(store)
        assert held is not None and held.params["camera_aware"] is True
        assert (held.params["k_intra"], held.params["k_inter"]) == (3, 5)
        placed = memberships(store, store.track_ids().tolist())
        assert sorted(placed) == store.track_ids().tolist()
        assert [(a, b) for a, b in overlapping_pairs(store) if placed[a].person_id == placed[b].person_id] == []


def test_an_old_store_is_read_as_unclustered_and_migrated_by_a_writer(two_camera_store: Path, tmp_path: Path) -> None:
    root = tmp_path / "store"
    shutil.copytree(two_camera_store, root)
    with Store.open(root, writable=True) as store:  # make it a schema-2 store, as stores were before people
        for table in ("track_people", "people", "clustering", "detection_attributes", "track_attributes"):
            store.db.execute(f"DROP TABLE {table}")
        store.db.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    with Store.open(root) as store:  # a reader reads it as it is: no people, the plain trajectory
        assert clustering(store) is None and people(store) == [] and person(store, 1) is None
        result = search_store(store, track_query(store, 1), top_k=3, exclude_track=1, query_track=1)
        assert not result.identity and all(hit.person_id is None for hit in result.hits)
        assert sum(v.sightings for v in result.trajectory) == len(result.hits)
    ran = CliRunner().invoke(app, ["cluster", "--db", str(root)])
    assert ran.exit_code == 0, ran.output
    with Store.open(root) as store:
        assert store.db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == SCHEMA_VERSION
        assert len(memberships(store, store.track_ids().tolist())) == store.count_rows("tracks")


def test_people_commands_refuse_an_unclustered_store_in_one_line(two_camera_store: Path) -> None:
    ran = CliRunner().invoke(app, ["people", "--db", str(two_camera_store)])  # main() prints it as `error: ...`
    assert isinstance(ran.exception, StoreError)
    assert "has not been clustered" in str(ran.exception) and "reidkit cluster --db" in str(ran.exception)


def test_an_impossible_move_is_left_out_keeping_the_surer_track(two_camera_store: Path) -> None:
    """cam2 is dated onto cam1's seconds: any cam1 track and cam2 track overlap in wall-clock time."""
    with Store.open(two_camera_store) as store:
        tracks = store.tracks(store.track_ids().tolist())
    cam1 = [t for t in tracks.values() if t.camera == "cam1"]
    cam2 = [t for t in tracks.values() if t.camera == "cam2"]
    first, clash = cam1[0], next(t for t in cam2 if t.first_seen <= cam1[0].last_seen)  # type: ignore[operator]
    kept, notes = drop_impossible_moves([Sighting(first, 0.8, 0.4), Sighting(clash, 0.7, 0.9)])
    assert [s.track.id for s in kept] == [clash.id]
    assert len(notes) == 1 and f"track {first.id}" in notes[0] and "'cam2'" in notes[0]
    later = next((t for t in cam1 if t.first_seen > first.last_seen), None)  # type: ignore[operator]
    if later is not None:  # one after the other in one camera is a walk, not a clash
        kept, notes = drop_impossible_moves([Sighting(first, 0.8, 0.4), Sighting(later, 0.7, 0.9)])
        assert len(kept) == 2 and notes == []


def test_trajectories_from_identity_hold_the_person_and_no_impossible_move(clustered: Path) -> None:
    with Store.open(clustered) as store:
        everyone = people(store)
        for found in everyone:
            visits, notes = person_trajectory(store, found)
            kept = [track for visit in visits for track in visit.track_ids]
            assert set(kept) <= {t.id for t in found.tracks}
            assert len(kept) + len(notes) == len(found.tracks)  # every track kept or named in a note
            assert all(v.confidence is not None and 0.0 <= v.confidence <= 1.0 for v in visits)
            _assert_no_two_places_at_once(store, kept)
        walker = max(everyone, key=lambda p: len(p.tracks))
        query = walker.tracks[0].id
        result = search_store(store, track_query(store, query), top_k=5, exclude_track=query, query_track=query)
        assert result.identity and result.person_id == walker.id
        placed = memberships(store, [hit.track.id for hit in result.hits])
        assert [hit.person_id for hit in result.hits] == [placed[hit.track.id].person_id for hit in result.hits]
        on_trajectory = {t for visit in result.trajectory for t in visit.track_ids}
        assert query in on_trajectory  # the query's own track is the person's, for certain
        others = on_trajectory - {t.id for t in walker.tracks}
        held = clustering(store)
        assert held is not None
        evidence = DifferentPeople.from_params(held.params["different_people_hit_scores"])
        assert evidence is not None
        threshold = evidence.threshold
        scores = {hit.track.id: hit.score for hit in result.hits}
        assert all(scores[t] >= threshold for t in others)  # anyone else joined only on a score beating 99%
        _assert_no_two_places_at_once(store, sorted(on_trajectory))
        assert all(0.0 <= v.confidence <= 1.0 for v in result.trajectory)  # type: ignore[operator]


def _assert_no_two_places_at_once(store: Store, track_ids: list[int]) -> None:
    rows = list(store.tracks(track_ids).values())
    for a in rows:
        for b in rows:
            if a.id < b.id:
                overlap = a.first_seen <= b.last_seen and b.first_seen <= a.last_seen  # type: ignore[operator]
                assert not overlap, (a, b)


def test_different_people_confidence_reads_the_distribution() -> None:
    scores = np.linspace(0.5, 0.9, 401)
    evidence = DifferentPeople.from_scores(scores)
    assert evidence is not None and evidence.pairs == 401
    assert evidence.confidence(0.4) == 0.0 and evidence.confidence(0.95) == 1.0
    assert evidence.confidence(0.7) == pytest.approx(0.5, abs=0.01)
    assert evidence.threshold == pytest.approx(0.896, abs=0.001)
    assert DifferentPeople.from_params(evidence.to_params()) == evidence
    assert DifferentPeople.from_scores(np.zeros(0)) is None
