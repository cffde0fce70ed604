"""``GET /people`` and ``GET /people/{id}`` on a real uvicorn server over a clustered two-camera store: the same
people as the store holds, each with tracks, cameras and a trajectory; roles, 404s, the audit trail; and a search
whose hits name their person."""

from __future__ import annotations

import re

import shutil
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from reidkit.search.grouping import group_store
from reidkit.search.people import people
from reidkit.service import audit
from reidkit.service.access import Role, create_token
from reidkit.service.settings import ServiceSettings
from reidkit.store.writer import Store

API = "/api/v1"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def service(two_camera_store: Path, tmp_path_factory: pytest.TempPathFactory,
            serve: Callable[..., str]) -> tuple[Path, str, dict[str, str]]:
    root = tmp_path_factory.mktemp("served") / "store"
    shutil.copytree(two_camera_store, root)
    with Store.open(root, writable=True) as store:
        group_store(store)
    url = serve(root, ServiceSettings(requests_per_minute=10_000))
    return root, url, {"Authorization": f"Bearer {create_token(root, Role.viewer, 'viewer')[1]}"}


def test_people_list_and_one_person_match_the_store(service: tuple[Path, str, dict[str, str]]) -> None:
    root, url, viewer = service
    with Store.open(root) as store:
        expected = people(store)
        model_id = store.model.model_id  # type: ignore[union-attr]
    with httpx.Client(base_url=url, timeout=120) as client:
        listed = client.get(f"{API}/people", headers=viewer)
        assert listed.status_code == 200, listed.text
        body = listed.json()
        assert body["clustering"]["model_id"] == model_id and body["clustering"]["unclustered_tracks"] == 0
        assert [(p["id"], p["tracks"], p["cameras"]) for p in body["people"]] == [
            (p.id, len(p.tracks), p.cameras) for p in expected
        ]
        widest = max(expected, key=lambda p: (len(p.cameras), len(p.tracks)))
        one = client.get(f"{API}/people/{widest.id}", headers=viewer)
        assert one.status_code == 200, one.text
        person = one.json()
        assert [t["id"] for t in person["tracks"]] == [t.id for t in widest.tracks]
        assert all(0.0 <= t["confidence"] <= 1.0 for t in person["tracks"])
        on_trajectory = [t for visit in person["trajectory"] for t in visit["track_ids"]]
        assert len(on_trajectory) + len(person["notes"]) == len(widest.tracks)
        assert all(visit["confidence"] is not None for visit in person["trajectory"])
        _same_as_the_cli(root, body, person, widest.id)
        track = client.get(person["tracks"][0]["track_url"], headers=viewer)
        assert track.status_code == 200 and track.json()["track"]["id"] == widest.tracks[0].id
        missing = client.get(f"{API}/people/{len(expected) + 1}", headers=viewer)
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
        assert client.get(f"{API}/people").status_code == 401
    entries = audit.read(root, limit=5)
    assert any(e.action == "person" and e.target.startswith(f"person {widest.id} ") for e in entries)


def test_a_search_names_each_hits_person_and_builds_the_trajectory_from_identity(
    service: tuple[Path, str, dict[str, str]],
) -> None:
    root, url, viewer = service
    with Store.open(root) as store:
        walker = max(people(store), key=lambda p: len(p.tracks))
    query = walker.tracks[0].id
    with httpx.Client(base_url=url, timeout=120) as client:
        found = client.post(f"{API}/search/track/{query}", headers=viewer, data={"top_k": "5"})
    assert found.status_code == 200, found.text
    payload = found.json()
    assert payload["trajectory_from"] == "identity" and payload["person_id"] == walker.id
    assert all(hit["person_url"] == f"{API}/people/{hit['person_id']}" for hit in payload["hits"])
    on_trajectory = {t for visit in payload["trajectory"] for t in visit["track_ids"]}
    assert query in on_trajectory


def test_an_unclustered_store_lists_no_people(small_store: Path, serve: Callable[..., str]) -> None:
    url = serve(small_store, ServiceSettings(requests_per_minute=10_000))
    viewer = {"Authorization": f"Bearer {create_token(small_store, Role.viewer, 'people')[1]}"}
    with httpx.Client(base_url=url, timeout=120) as client:
        listed = client.get(f"{API}/people", headers=viewer)
        assert listed.status_code == 200 and listed.json() == {"clustering": None, "people": []}
        assert client.get(f"{API}/people/1", headers=viewer).status_code == 404


def _same_as_the_cli(root: Path, listed: dict, one: dict, person_id: int) -> None:
    """`reidkit people --json` prints the API's answers, less the API's own links."""
    import json

    from typer.testing import CliRunner

    from reidkit.cli.main import app

    def unlinked(answer: dict) -> dict:
        text = json.dumps(answer)
        for key in ("person_url", "track_url"):
            text = re.sub(rf', "{key}": "[^"]*"', "", text)
        return json.loads(text)

    printed = CliRunner().invoke(app, ["people", "--db", str(root), "--json"])
    assert printed.exit_code == 0 and json.loads(printed.stdout) == unlinked(listed)
    printed = CliRunner().invoke(app, ["people", str(person_id), "--db", str(root), "--json"])
    assert printed.exit_code == 0 and json.loads(printed.stdout) == unlinked(one)
