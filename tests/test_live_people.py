"""People linked online across cameras (reidkit.live.online_people): the walkers of the shared video's cut.

The shared video ingested as two cameras (its first half as cam-a, its second as cam-b, every 4th frame, as
`reidkit demo-video` does) with the shipped model, then replayed as a watcher reports it: every 2 s of footage the tracks seen so far,
vectors pooled over the crops seen so far (benchmarks/bench_online_people.live_batches). A tracker run across the
cut says who is who (demos.video_demo.walkers_across_cut), with no labels.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from types import ModuleType

import httpx
import pytest

from reidkit.errors import StoreError
from reidkit.live.online_people import OnlinePeople
from reidkit.live.people_now import person_of_track, recent_people, trajectory
from test_service_web import browser, screens, session  # noqa: F401, F811  (the page's browser fixtures)

START = datetime(2024, 5, 1, 9, 0, 0)
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cut_store(tmp_path_factory: pytest.TempPathFactory, vtest_video: Path, shared_dir: Path) -> tuple[Path, list]:
    from reidkit.demos.video_demo import DETECTOR_MODEL, walkers_across_cut
    from reidkit.search.ingest import IngestOptions, ingest_video
    from reidkit.inference.model_choice import choose_model
    from reidkit.video.detector_choice import choose_detector
    from reidkit.store.writer import Store
    from reidkit.video import probe_video

    root = tmp_path_factory.mktemp("live-people") / "store"
    info = probe_video(vtest_video)
    cut = info.num_frames // 2
    detector = choose_detector(None, openvino_model=shared_dir / DETECTOR_MODEL)
    model = choose_model(None, None, backend="auto")
    with Store.open(root, writable=True, create=True) as store:
        ids = []
        for camera, first, end in (("cam-a", 0, cut), ("cam-b", cut, info.num_frames)):
            options = IngestOptions(camera, START, 4, first, end, progress=False)
            ids.append(ingest_video(store, info, options, model.extractor, detector, model.source).video_id)
        walkers = walkers_across_cut(store, ids[0], ids[1], detector)
    assert walkers, "no walker crosses the cut"
    return root, [(set(w.tracks_a), set(w.tracks_b)) for w in walkers]


@pytest.fixture(scope="module")
def batches(cut_store: tuple[Path, list], bench_online_people: ModuleType) -> list:
    from reidkit.store.reader import StoreReader

    with StoreReader.open(cut_store[0]) as store:
        return bench_online_people.live_batches(store)


@pytest.fixture(scope="module")
def bench_online_people() -> ModuleType:
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_online_people.py"
    spec = importlib.util.spec_from_file_location("bench_online_people", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_walkers_across_the_cut_become_one_person_and_no_one_is_twice_in_a_frame(
    cut_store: tuple[Path, list], batches: list, tmp_path: Path
) -> None:
    _, walkers = cut_store
    linker = OnlinePeople(tmp_path)
    links = [link for batch in batches for link in linker.link(batch)]
    person = linker.recent_links()
    linker.close()
    for side_a, side_b in walkers:  # each walker's two sides share a person
        assert {person[t] for t in side_a} & {person[t] for t in side_b}, (side_a, side_b)
    everyone = [{person[t] for t in a | b} for a, b in walkers]
    assert all(not (everyone[i] & everyone[j]) for i in range(len(everyone)) for j in range(i + 1, len(everyone)))
    # one person is never on one camera twice at the same time
    spans = {u.track_id: (u.camera, u.first_epoch, u.last_epoch) for batch in batches for u in batch}
    for a, (camera, first, last) in spans.items():
        for b, (camera_b, first_b, last_b) in spans.items():
            if a < b and camera == camera_b and first <= last_b and first_b <= last:
                assert person[a] != person[b], (a, b)
    joined = [link for link in links if link.similarity is not None]
    assert joined and all(link.similarity >= link.threshold for link in joined)
    assert len(set(person.values())) < len(person)  # some tracks were linked, not each its own person


def test_live_people_are_read_back_where_they_are_now_and_survive_a_restart(
    cut_store: tuple[Path, list], batches: list, tmp_path: Path
) -> None:
    _, walkers = cut_store
    linker = OnlinePeople(tmp_path)
    for batch in batches[: len(batches) // 2]:
        linker.link(batch)
    linker.close()
    restarted = OnlinePeople(tmp_path)  # a watcher restarted halfway goes on from live.sqlite
    before = restarted.recent_links()
    for batch in batches[len(batches) // 2:]:
        restarted.link(batch)
    after = restarted.recent_links()
    restarted.close()
    assert before and all(after[t] == p or _was_alone(before, t) for t, p in before.items())
    side_a, side_b = walkers[0]
    walker = person_of_track(tmp_path, next(iter(side_b)))
    assert walker.last_camera == "cam-b"  # now on the second camera
    found, sightings = trajectory(tmp_path, walker.id)
    assert found == walker and [s.camera for s in sightings][-1] == "cam-b"
    assert any(s.track_id in side_a for s in sightings) and any(s.track_id in side_b for s in sightings)
    times = [s.first_epoch for s in sightings]
    assert times == sorted(times)
    listed = recent_people(tmp_path)
    assert walker in listed and [p.last_epoch for p in listed] == sorted((p.last_epoch for p in listed), reverse=True)
    with pytest.raises(StoreError, match="no live person 99999"):
        trajectory(tmp_path, 99999)
    with pytest.raises(StoreError, match="track 99999 is not linked"):
        person_of_track(tmp_path, 99999)
    (tmp_path / "never-watched").mkdir()
    assert recent_people(tmp_path / "never-watched") == []


def _was_alone(links: dict[int, int], track: int) -> bool:
    """A track that was its person's only one may still join someone as it grows."""
    return sum(p == links[track] for p in links.values()) == 1


def test_the_api_tells_where_a_live_person_is_now(
    cut_store: tuple[Path, list], batches: list, tmp_path_factory: pytest.TempPathFactory, serve
) -> None:
    import shutil

    from reidkit.service.access import Role, create_token

    root = tmp_path_factory.mktemp("served") / "store"
    shutil.copytree(cut_store[0], root)
    linker = OnlinePeople(root)
    for batch in batches:
        linker.link(batch)
    linker.close()
    _, secret = create_token(root, Role.viewer, "viewer")
    url = serve(root)
    headers = {"Authorization": f"Bearer {secret}"}
    listed = httpx.get(f"{url}/api/v1/live/people", headers=headers, timeout=30).json()["people"]
    assert listed and {"id", "camera_now", "last_seen", "person_url"} <= set(listed[0])
    walker_track = next(iter(cut_store[1][0][1]))
    mine = httpx.get(f"{url}/api/v1/live/tracks/{walker_track}/person", headers=headers, timeout=30)
    assert mine.status_code == 200, mine.text
    body = mine.json()
    assert body["person"]["camera_now"] == "cam-b" and body["cameras"] == ["cam-a", "cam-b"]
    crop = httpx.get(url + body["trajectory"][0]["crop_url"], headers=headers, timeout=30)
    assert crop.status_code == 200 and crop.content[:2] == b"\xff\xd8"
    again = httpx.get(url + body["person"]["person_url"], headers=headers, timeout=30).json()
    assert again["trajectory"] == body["trajectory"]
    assert httpx.get(f"{url}/api/v1/live/people/99999", headers=headers, timeout=30).status_code == 404
    assert httpx.get(f"{url}/api/v1/live/people", timeout=30).status_code == 401
    recent = httpx.get(f"{url}/api/v1/live/people", params={"within_s": 1}, headers=headers, timeout=30)
    assert recent.status_code == 200 and recent.json()["people"] == []  # the footage is from 2024
    assert httpx.get(f"{url}/api/v1/live/people", params={"within_s": -1}, headers=headers,
                     timeout=30).status_code == 422
    joined = [s["similarity"] for s in body["trajectory"] if s["similarity"] is not None]
    assert joined and min(joined) >= 0.5  # the walker's later tracks joined him, well above strangers' 0
    from reidkit.service import audit

    actions = [entry.action for entry in audit.read(root, limit=200)]
    assert actions.count("live_people") == 2 and actions.count("live_person") == 2  # every read, lists included


@pytest.mark.browser
def test_the_page_shows_people_now_and_a_persons_live_trajectory(
    cut_store: tuple[Path, list], batches: list, tmp_path_factory: pytest.TempPathFactory, serve,
    session,  # noqa: F811  (the fixture imported above)
) -> None:
    import shutil

    from reidkit.service.access import Role, create_token

    root = tmp_path_factory.mktemp("page") / "store"
    shutil.copytree(cut_store[0], root)
    linker = OnlinePeople(root)
    for batch in batches:
        linker.link(batch)
    linker.close()
    walker = person_of_track(root, next(iter(cut_store[1][0][1])))
    url = serve(root)
    tab = session(url)
    tab.open()
    tab.login(create_token(root, Role.viewer, "people now")[1])
    page = tab.page
    page.click('[data-panel="live-people-panel"]')
    page.wait_for_selector("#live-people tbody tr")
    rows = page.eval_on_selector_all("#live-people tbody tr", "rows => rows.map(r => r.cells[0].textContent)")
    assert str(walker.id) in rows and len(rows) == len(recent_people(root, limit=50))
    page.click(f"#live-people tbody tr:nth-child({rows.index(str(walker.id)) + 1}) button")
    page.wait_for_selector(f"#live-person-title:has-text('Person {walker.id}: now on cam-b')")
    expected = len(trajectory(root, walker.id)[1])  # the page adds a row as each crop arrives: wait for them all
    page.wait_for_function("n => document.querySelectorAll('#live-trajectory li').length === n", arg=expected)
    tab.images_loaded("#live-trajectory img")
    shown = page.locator("#live-trajectory li").all_text_contents()
    assert len(shown) == expected and "cam-a" in shown[0] and "cam-b" in shown[-1]
    tab.shot("live-people-trajectory")
