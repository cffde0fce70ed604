"""The front half of video person search: decode frames, detect people, track them within the camera, crop them.

``iter_frames`` -> ``Detector.detect`` -> ``ByteTracker.update`` -> ``crop_person`` / ``crop_quality``; the search
stage embeds the crops and stores the tracks. See docs/video.md for choosing a detector.

Nothing is imported here until it is asked for (PEP 562): a reader of ``video.types`` loads no PyAV, OpenCV or
OpenVINO.
"""

from reidkit.lazy_exports import lazy_getattr

# Each exported name and the module that defines it.
_EXPORTS = {
    "ByteTracker": "bytetrack",
    "crop_person": "crops",
    "crop_quality": "crops",
    "TruncatedVideoWarning": "decode",
    "frame_digest": "decode",
    "iter_frames": "decode",
    "probe_video": "decode",
    "read_frame": "decode",
    "video_fingerprint": "decode",
    "DETECTORS": "detectors",
    "build_detector": "detectors",
    "default_openvino_model": "detectors",
    "Detector": "types",
    "Frame": "types",
    "TrackedBox": "types",
    "VideoInfo": "types",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_getattr(__name__, _EXPORTS)
