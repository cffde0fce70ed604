"""The front half of video person search: decode frames, detect people, track them within the camera, crop them.

``iter_frames`` -> ``Detector.detect`` -> ``ByteTracker.update`` -> ``crop_person`` / ``crop_quality``; the search
stage embeds the crops and stores the tracks. See docs/video.md for choosing a detector.
"""

from reidkit.video.bytetrack import ByteTracker
from reidkit.video.crops import crop_person, crop_quality
from reidkit.video.decode import (
    TruncatedVideoWarning,
    frame_digest,
    iter_frames,
    probe_video,
    read_frame,
    video_fingerprint,
)
from reidkit.video.detectors import DETECTORS, build_detector, default_openvino_model
from reidkit.video.types import Detector, Frame, TrackedBox, VideoInfo

__all__ = [
    "DETECTORS",
    "ByteTracker",
    "Detector",
    "Frame",
    "TrackedBox",
    "TruncatedVideoWarning",
    "VideoInfo",
    "build_detector",
    "crop_person",
    "crop_quality",
    "default_openvino_model",
    "frame_digest",
    "iter_frames",
    "probe_video",
    "read_frame",
    "video_fingerprint",
]
