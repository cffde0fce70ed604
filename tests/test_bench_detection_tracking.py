"""The detection and tracking benchmark: MOTChallenge parsing, its detection scores on hand-checked cases, the two
evaluators agreeing on known tracks, and the script end to end on a MOT-format folder made of real campus frames."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from conftest import _load_benchmark  # tests/ is on sys.path (rootdir conftest)

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def mot_data() -> ModuleType:
    # Both evaluators are part of the project's environment (extra [mot], and TrackEval installed by `make venv`):
    # a missing one is a failure here, not a skip.
    import motmetrics  # noqa: F401
    import trackeval  # noqa: F401

    return _load_benchmark("mot_data")


def test_gt_rows_split_into_people_and_distractors(mot_data: ModuleType, tmp_path: Path) -> None:
    gt = tmp_path / "gt.txt"
    gt.write_text("1,1,10,20,30,60,1,1,0.9\n1,2,100,20,30,60,0,1,1\n1,3,200,20,30,60,1,7,1\n"
                  "2,1,12,20,30,60,1,1,1\n9,1,12,20,30,60,1,1,1\n")
    people, distractors = mot_data.parse_gt(gt, last_frame=2)
    np.testing.assert_array_equal(people[:, :2], [[1, 1], [2, 1]])  # not-considered row and frame 9 dropped
    np.testing.assert_array_equal(people[0, 2:], [10, 20, 40, 80])  # xywh -> xyxy
    np.testing.assert_array_equal(distractors[:, 1], [3])  # class 7, static person


def test_detection_scores_on_a_hand_checked_frame(mot_data: ModuleType) -> None:
    people = np.array([[0, 0, 10, 20], [50, 0, 60, 20], [100, 0, 110, 20]], dtype=float)
    distractor = np.array([[200, 0, 210, 20]], dtype=float)
    dets = np.array([
        [0, 0, 10, 20, 0.9],  # hit
        [1, 0, 11, 20, 0.8],  # duplicate of the first: a false alarm
        [200, 0, 210, 20, 0.7],  # on the distractor: not scored
        [50, 0, 60, 20, 0.3],  # hit, weak
        [300, 0, 310, 20, 0.2],  # false alarm
    ], dtype=np.float32)
    tally = mot_data.DetectionTally([], [])
    tally.add(people, distractor, dets)
    assert tally.num_people == 3 and len(tally.scores) == 4
    assert tally.at(0.5) == pytest.approx((1 / 3, 1 / 2))
    assert tally.at(0.1) == pytest.approx((2 / 3, 2 / 4))
    # precision envelope: 1 up to recall 1/3, then 2/3 up to recall 2/3
    assert tally.average_precision() == pytest.approx(1 / 3 * 1 + 1 / 3 * 2 / 3)


def test_both_evaluators_agree_on_perfect_and_switched_tracks(mot_data: ModuleType) -> None:
    a, b = np.array([0, 0, 10, 20.0]), np.array([50, 0, 60, 20.0])
    gt_ids, gt_boxes = np.array([1, 2]), np.stack([a, b])

    def frames(track_ids: list[list[int]]) -> list:
        return [mot_data.FrameTracks(gt_ids, gt_boxes, np.array(ids), gt_boxes) for ids in track_ids]

    perfect = mot_data.tracking_scores(frames([[7, 8]] * 4))
    assert perfect["MOTA"] == perfect["IDF1"] == perfect["HOTA"] == pytest.approx(1.0) and perfect["IDSW"] == 0
    switched = mot_data.tracking_scores(frames([[7, 8], [7, 8], [9, 8], [9, 8]]))
    assert switched["IDSW"] == 1
    assert switched["MOTA"] == pytest.approx(switched["trackeval_MOTA"]) == pytest.approx(1 - 1 / 8)
    assert switched["IDF1"] == pytest.approx(switched["trackeval_IDF1"]) == pytest.approx(6 / 8)
    assert switched["HOTA"] < 1.0


def test_the_script_scores_a_mot_folder_of_real_frames(mot_data: ModuleType, shared_dir: Path,
                                                       tmp_path: Path) -> None:
    """Six campus frames as a MOTChallenge sequence whose ground truth is retail-0013's own confident boxes: the
    detector must then score recall and precision 1 at 0.5, and the JSON must carry every sampling asked for."""
    pytest.importorskip("openvino")
    import cv2

    from reidkit.video import build_detector, iter_frames

    video = shared_dir / "videos" / "vtest.avi"
    if not video.is_file():
        pytest.skip(f"{video} is absent")
    seq = tmp_path / "mot" / "CAMPUS-01"
    (seq / "img1").mkdir(parents=True)
    (seq / "gt").mkdir()
    (seq / "seqinfo.ini").write_text("[Sequence]\nname=CAMPUS-01\nimDir=img1\nframeRate=10\nimExt=.png\n")
    detector = build_detector("openvino")
    rows = []
    for number, frame in enumerate(iter_frames(video, start_frame=100, end_frame=106, progress=False), start=1):
        cv2.imwrite(str(seq / "img1" / f"{number:06d}.png"), cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGR))
        for i, (x0, y0, x1, y1, score) in enumerate(detector.detect(frame.image)):
            if score >= 0.5:
                rows.append(f"{number},{i},{x0},{y0},{x1 - x0},{y1 - y0},1,1,1")
    (seq / "gt" / "gt.txt").write_text("\n".join(rows) + "\n")
    out = tmp_path / "dt.json"
    done = subprocess.run(
        [sys.executable, str(REPO_ROOT / "benchmarks" / "bench_detection_tracking.py"), "--mot", str(tmp_path / "mot"),
         "--detectors", "openvino", "--every", "1,3", "--video-frames", "20", "--speed-frames", "3", "--reid",
         "--out", str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (result,) = json.loads(out.read_text())["results"]
    (row,) = result["sequences"]
    assert row["people"] == len(rows) > 10
    assert row["recall@0.5"] == row["precision@0.5"] == 1.0 and row["AP"] >= 0.99
    assert [t["every"] for t in row["tracking"]] == [1, 3] and [t["frames"] for t in row["tracking"]] == [6, 2]
    assert [(s["every"], s["reid"]) for s in result["low_rate_storage"]] == [(1, False), (1, True), (10, False),
                                                                              (10, True)]
    assert min(result["fps_768x576"].values()) > 0
    assert result["pooled"]["people"] == len(rows) and result["pooled"]["by_threshold"]["0.5"]["recall"] == 1.0
    # appearance on top of perfect boxes: still every person found, and the embedding cost is counted
    assert [t["every"] for t in row["tracking_reid"]] == [1, 3]
    assert row["tracking_reid"][0]["MOTA"] >= row["tracking"][0]["MOTA"] - 1e-9
    assert json.loads(out.read_text())["reid_embedding"]["crops"] > len(rows)
    assert "| openvino | CAMPUS-01 |" in done.stdout and "| openvino +reid | CAMPUS-01 |" in done.stdout


def test_a_folder_without_sequences_is_a_one_line_error(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(REPO_ROOT / "benchmarks" / "bench_detection_tracking.py"), "--mot", str(tmp_path)],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and f"--mot {tmp_path}: no MOTChallenge sequence" in done.stderr
