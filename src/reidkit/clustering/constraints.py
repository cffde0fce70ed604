"""What footage tells for free, made into constraints: one track is one person, one frame holds different people.

Must-link groups (e.g. the detections of one track) are merged into one node before clustering: their mean
feature, re-normalised, stands for all of them, so they cannot be split and their agreement sharpens the feature.
Cannot-link pairs (two items of one frame) are kept apart twice: their distance is set above any radius where a
method reads distances, and afterwards any cluster that still holds such a pair (DBSCAN chains through third
items) is split, each member joining the nearest part it does not conflict with.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np

from reidkit.errors import ConfigError


@dataclass(frozen=True)
class Nodes:
    """Items merged by must-link groups: item i is node ``item_node[i]``; a node has ``sizes`` items and the
    L2-normalised mean ``features`` of them; ``conflicts`` (P, 2) lists node pairs that may not share a cluster;
    ``cameras`` each node's camera code (its first item's camera), or None when cameras are unknown."""

    item_node: np.ndarray
    features: np.ndarray
    sizes: np.ndarray
    conflicts: np.ndarray
    cameras: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.sizes.size)


def build_nodes(
    features: np.ndarray,
    groups: Sequence[Hashable | None] | None,
    frames: Sequence[Hashable | None] | None,
    cameras: Sequence[Hashable] | None = None,
) -> Nodes:
    """Nodes of L2-normalised ``features`` (N, D): items sharing a non-None ``groups`` key become one node; nodes
    holding items with one non-None ``frames`` key conflict. A group with two items of one frame is refused.
    ``cameras`` (one per item) gives each node its first item's camera."""
    n = features.shape[0]
    item_node = _group_index(groups, n, "groups")
    count = int(item_node.max()) + 1 if n else 0
    sizes = np.bincount(item_node, minlength=count)
    if count == n:
        merged = features
    else:
        merged = np.zeros((count, features.shape[1]), dtype=np.float64)
        np.add.at(merged, item_node, features)
        merged = normalise_rows(merged.astype(np.float32))
    return Nodes(item_node, merged, sizes, _conflicts(item_node, frames, groups), _node_cameras(item_node, cameras))


def camera_codes(cameras: Sequence[Hashable], count: int) -> np.ndarray:
    """(count,) camera codes 0, 1, ... for one camera key per item (keys compared as text); a list of another
    length is refused in one line."""
    if len(cameras) != count:
        raise ConfigError(f"cameras has {len(cameras)} entries for {count} items: give one per item")
    return np.unique(np.asarray([str(c) for c in cameras]), return_inverse=True)[1].astype(np.int64)


def _node_cameras(item_node: np.ndarray, cameras: Sequence[Hashable] | None) -> np.ndarray | None:
    """(nodes,) camera codes, each node's first item's camera; None without cameras."""
    if cameras is None:
        return None
    codes = camera_codes(cameras, item_node.size)
    _, first_item = np.unique(item_node, return_index=True)  # nodes are numbered 0, 1, ... in item order
    return codes[first_item]


def normalise_rows(features: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (an all-zero row stays zero)."""
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    return (features / np.maximum(norms, 1e-12)).astype(np.float32)


def _group_index(keys: Sequence[Hashable | None] | None, n: int, name: str) -> np.ndarray:
    """Node of each item: items with equal non-None keys share one, every other item has its own, in item order."""
    if keys is not None and len(keys) != n:
        raise ConfigError(f"{name} has {len(keys)} entries for {n} items: give one key (or None) per item")
    index = np.empty(n, dtype=np.int64)
    seen: dict[Hashable, int] = {}
    nodes = 0
    for i in range(n):
        key = None if keys is None else keys[i]
        if key is not None and key in seen:
            index[i] = seen[key]
            continue
        if key is not None:
            seen[key] = nodes
        index[i] = nodes
        nodes += 1
    return index


def _conflicts(
    item_node: np.ndarray, frames: Sequence[Hashable | None] | None, groups: Sequence[Hashable | None] | None
) -> np.ndarray:
    if frames is None:
        return np.zeros((0, 2), dtype=np.int64)
    if len(frames) != item_node.size:
        raise ConfigError(
            f"frames has {len(frames)} entries for {item_node.size} items: give one key (or None) per item"
        )
    by_frame: dict[Hashable, list[int]] = {}
    for i, frame in enumerate(frames):
        if frame is not None:
            by_frame.setdefault(frame, []).append(i)
    pairs: set[tuple[int, int]] = set()
    for frame, items in by_frame.items():
        for a, b in combinations(items, 2):
            node_a, node_b = int(item_node[a]), int(item_node[b])
            if node_a == node_b:
                group = None if groups is None else groups[a]
                raise ConfigError(
                    f"items {a} and {b} are in one must-link group ({group!r}) but also in one frame ({frame!r}): "
                    "one person cannot appear twice in a frame"
                )
            pairs.add((min(node_a, node_b), max(node_a, node_b)))
    return np.array(sorted(pairs), dtype=np.int64).reshape(-1, 2)


def split_conflicts(
    labels: np.ndarray, confidence: np.ndarray, features: np.ndarray, conflicts: np.ndarray
) -> tuple[np.ndarray, int]:
    """Node labels with every cluster that holds a cannot-link pair split in parts without one; returns the new
    labels and how many clusters were split.

    Members are placed most confident first; each joins the part holding its nearest member (Euclidean distance of
    the features, as single linkage would) among the parts it conflicts with nowhere, else starts a part. The first
    part keeps the label; the others get new ones.
    """
    labels = labels.copy()
    if conflicts.size == 0:
        return labels, 0
    same = (labels[conflicts[:, 0]] == labels[conflicts[:, 1]]) & (labels[conflicts[:, 0]] >= 0)
    enemies: dict[int, set[int]] = {}
    for a, b in conflicts:
        enemies.setdefault(int(a), set()).add(int(b))
        enemies.setdefault(int(b), set()).add(int(a))
    next_label = int(labels.max()) + 1
    split = 0
    for cluster in np.unique(labels[conflicts[same, 0]]):
        members = np.flatnonzero(labels == cluster)
        members = members[np.argsort(-confidence[members], kind="stable")]
        parts: list[list[int]] = []
        for node in members:
            allowed = [p for p in parts if not enemies.get(int(node), set()).intersection(p)]
            if allowed:
                nearest = min(allowed, key=lambda p: float(np.min(np.sum((features[p] - features[node]) ** 2, axis=1))))
                nearest.append(int(node))
            else:
                parts.append([int(node)])
        for part in parts[1:]:
            labels[part] = next_label
            next_label += 1
        split += 1
    return labels, split
