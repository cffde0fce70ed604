"""One exception family for every failure a user can cause or fix.

The CLI turns any ``ReidkitError`` into a single ``error: ...`` line and exit code 2, so messages must name the
file, field or option at fault and say what to do; anything else escaping is a bug and keeps its traceback.
"""


class ReidkitError(Exception):
    """A problem with the user's input, data or environment, explained in one line."""


class DatasetError(ReidkitError):
    """A dataset folder, file name, split file or image is missing or malformed."""


class ImageError(DatasetError):
    """An image file cannot be opened or decoded (missing, truncated, not an image)."""


class ConfigError(ReidkitError):
    """A configuration file or ``key=value`` override is wrong."""


class ModelError(ReidkitError):
    """A model, backbone, weights file or checkpoint cannot be built or loaded."""


class StoreError(ReidkitError):
    """The person-search store is missing, inconsistent, or was asked something it cannot answer."""


class StoreBusyError(StoreError):
    """Another process holds the store's writer lock (an ingest runs); try again when it has finished."""


class VideoError(ReidkitError):
    """A video cannot be opened or decoded."""
