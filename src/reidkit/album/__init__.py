"""The album product: photos or person crops in, who is who out (``reidkit cluster``, docs/clustering.md).

Sits above search (it reuses ingest's choice of model and detector) and beside viz; the clustering itself is
``reidkit.clustering``. ``OutputStaging`` writes any clustering's result folder, whatever the people came from.
"""

from reidkit.album.outputs import RESULT_FILE, OutputItem, OutputStaging, person_folder
from reidkit.album.run import AlbumOptions, AlbumReport, cluster_album
from reidkit.album.sources import PersonCrop, collect_images, read_rgb, sightings

__all__ = [
    "RESULT_FILE",
    "AlbumOptions",
    "AlbumReport",
    "OutputItem",
    "OutputStaging",
    "PersonCrop",
    "cluster_album",
    "collect_images",
    "person_folder",
    "read_rgb",
    "sightings",
]
