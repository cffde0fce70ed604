"""reidkit: person re-identification from raw video to a ranked answer."""

__version__ = "0.1.0"
