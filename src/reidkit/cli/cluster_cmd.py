"""``reidkit cluster``: who is who among the people of photos or person crops (docs/clustering.md).

One command, one function per source of people: ``_cluster_photos`` for files and folders; the clustering options
are parsed once (``_cluster_options``) for every source. The work lives in ``reidkit.album`` and
``reidkit.clustering``, imported inside the command so that ``reidkit --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from reidkit.errors import ConfigError

# reidkit.clustering.types' defaults, restated (tests/test_clustering_core.py holds them equal): importing the
# clustering stage loads SciPy for --help.
DEFAULT_METHOD = "agglomerative-jaccard"
TRAIN_SPLIT_K1 = 10
TRAIN_SPLIT_EPS = 0.4
TRAIN_SPLIT_LINKAGE_CUT = 0.65
DEFAULT_WHITEN = 0
HELD_OUT_K_INTRA = 3
HELD_OUT_K_INTER = 5

if TYPE_CHECKING:
    from reidkit.clustering import ClusterOptions


def register(app: typer.Typer) -> None:
    """Add ``cluster`` to the ``reidkit`` app."""
    app.command("cluster")(cluster)


def cluster(
    photos: Annotated[
        list[Path] | None, typer.Argument(help="photos, person crops (--crops), or folders of them", show_default=False)
    ] = None,
    out: Annotated[Path, typer.Option("--out", help="result folder (clusters.json, people/, contact sheet)")] = Path(
        "clusters"
    ),
    crops: Annotated[bool, typer.Option("--crops", help="each image is one person's crop (no detector)")] = False,
    checkpoint: Annotated[
        str | None,
        typer.Option(
            "--checkpoint", help="ReID model file, a shipped model's name, or 'imagenet' (default: the store's model, "
            "else the shipped market1501_mgn_mobilenetv2)"
        ),
    ] = None,
    method: Annotated[
        str, typer.Option("--method", help="agglomerative-jaccard (default), dbscan-jaccard or hdbscan")
    ] = DEFAULT_METHOD,
    eps: Annotated[
        str, typer.Option("--eps", help="DBSCAN radius in Jaccard distance, or 'auto': derived from the features")
    ] = str(TRAIN_SPLIT_EPS),
    linkage_cut: Annotated[
        float, typer.Option("--linkage-cut", help="average-linkage distance where agglomerative-jaccard stops merging")
    ] = TRAIN_SPLIT_LINKAGE_CUT,
    min_samples: Annotated[int, typer.Option("--min-samples", help="DBSCAN core-point count")] = 2,
    min_cluster_size: Annotated[int, typer.Option("--min-cluster-size", help="HDBSCAN's smallest cluster")] = 2,
    k1: Annotated[int, typer.Option("--k1", help="k-reciprocal neighbourhood size")] = TRAIN_SPLIT_K1,
    k2: Annotated[int, typer.Option("--k2", help="query-expansion size")] = 6,
    whiten: Annotated[
        int, typer.Option("--whiten", help="PCA-whiten the people among themselves to N components (0: off)")
    ] = DEFAULT_WHITEN,
    camera_aware: Annotated[
        bool,
        typer.Option("--camera-aware", help="k-reciprocal sets from each camera's own and the other cameras' "
                     "nearest, apart (cameras: a store's, or each photo's folder)"),
    ] = False,
    k_intra: Annotated[int, typer.Option("--k-intra", help="--camera-aware: nearest of its own camera")] = (
        HELD_OUT_K_INTRA
    ),
    k_inter: Annotated[int, typer.Option("--k-inter", help="--camera-aware: nearest of the other cameras")] = (
        HELD_OUT_K_INTER
    ),
    detector: Annotated[
        str | None, typer.Option("--detector", help="openvino, openvino-hires, hog or torchvision (default: as ingest)")
    ] = None,
    device: Annotated[str, typer.Option("--device", help="torch device for the ReID model")] = "cpu",
    flip: Annotated[bool, typer.Option("--flip", help="average each feature with the mirrored crop's")] = False,
    db: Annotated[
        Path | None,
        typer.Option("--db", help="a person-search store (instead of PHOTOS): its tracks grouped into people"),
    ] = None,
) -> None:
    """Group the people of photos (or crops) by identity: links per person, clusters.json, a contact sheet; or,
    with --db, the tracks of a person-search store (all cameras), stored in it (docs/search.md)."""
    options = _cluster_options(method, eps, linkage_cut, min_samples, min_cluster_size, k1, k2, whiten,
                               camera_aware, k_intra, k_inter)
    if db is not None:
        if photos:
            raise ConfigError("give either PHOTOS or --db STORE, not both")
        from reidkit.cli.people_cmd import cluster_store

        cluster_store(db, options)
        return
    if not photos:
        raise ConfigError("no photos given: pass image files or folders (with --crops when each image is one person)")
    _cluster_photos(photos, out, options, crops=crops, checkpoint=checkpoint, detector=detector, device=device,
                    flip=flip)


def _cluster_options(
    method: str, eps_text: str, linkage_cut: float, min_samples: int, min_cluster_size: int, k1: int, k2: int,
    whiten: int, camera_aware: bool = False, k_intra: int = HELD_OUT_K_INTRA, k_inter: int = HELD_OUT_K_INTER,
) -> ClusterOptions:
    """The clustering options, every value checked here so that a typo fails before a model loads (k_intra and
    k_inter only with ``camera_aware``, the only time they are read)."""
    from reidkit.clustering import CLUSTER_METHODS, ClusterOptions

    CLUSTER_METHODS.get(method)
    try:
        eps = None if eps_text == "auto" else float(eps_text)
    except ValueError:
        raise ConfigError(f"--eps {eps_text!r}: give a number in (0, 1) or 'auto'") from None
    if eps is not None and not 0.0 < eps < 1.0:
        raise ConfigError(f"--eps {eps}: a Jaccard distance radius lies in (0, 1)")
    if not 0.0 < linkage_cut < 1.0:
        raise ConfigError(f"--linkage-cut {linkage_cut}: a Jaccard distance lies in (0, 1)")
    for name, value in (("--min-samples", min_samples), ("--min-cluster-size", min_cluster_size),
                        ("--k1", k1), ("--k2", k2), *((("--k-intra", k_intra), ("--k-inter", k_inter))
                                                      if camera_aware else ())):
        if value < 1:
            raise ConfigError(f"{name} must be a positive integer, got {value}")
    if whiten < 0:
        raise ConfigError(f"--whiten must be a number of components (0: off), got {whiten}")
    if camera_aware and method == "hdbscan":
        raise ConfigError("--camera-aware applies to the Jaccard methods (k-reciprocal neighbourhoods), not hdbscan")
    return ClusterOptions(method=method, eps=eps, linkage_cut=linkage_cut, min_samples=min_samples,
                          min_cluster_size=min_cluster_size, k1=k1, k2=k2, whiten=whiten, camera_aware=camera_aware,
                          k_intra=k_intra, k_inter=k_inter)


def _cluster_photos(
    photos: list[Path], out: Path, options: ClusterOptions, *, crops: bool, checkpoint: str | None,
    detector: str | None, device: str, flip: bool,
) -> None:
    from reidkit.album import AlbumOptions, cluster_album

    album = AlbumOptions(crops=crops, checkpoint=checkpoint, detector=detector, device=device, flip=flip,
                         cluster=options)
    report = cluster_album(photos, out, album)
    if report.warning:
        typer.echo(f"warning: {report.warning}", err=True)
    if options.camera_aware and not report.params.get("camera_aware"):
        typer.echo("warning: --camera-aware needs people from two camera folders or more; all came from one, so "
                   f"each one's {options.k1} nearest were used", err=True)
    radius = next((f", {key} {report.params[key]}" for key in ("eps", "linkage_cut") if key in report.params), "")
    typer.echo(
        f"{report.people} people among {report.sightings} sightings in {report.images} images "
        f"({report.unclustered} unclustered); method {report.params['method']}{radius}"
        + f" -> {report.out}/clusters.json, {report.out}/people/, {report.out}/contact_sheet.html"
    )
