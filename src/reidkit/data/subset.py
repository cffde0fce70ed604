"""Smaller test splits with the same protocol: for quick runs, figures and tests on a real benchmark."""

from __future__ import annotations

from dataclasses import replace

from reidkit.data.types import ImageRecord, ReidDataset


def subset_identities(dataset: ReidDataset, max_train_ids: int | None, max_test_ids: int | None) -> ReidDataset:
    """Keep the first ``max_train_ids`` train identities and ``max_test_ids`` query identities (in pid order).

    For quick runs and tests: the test subset keeps every gallery crop of the chosen identities plus the gallery's
    distractors, so the protocol is unchanged, only smaller.
    """
    train, query, gallery = dataset.train, dataset.query, dataset.gallery
    if max_train_ids is not None:
        keep = _first_identities(train, max_train_ids)
        train = [r for r in train if r.pid in keep]
    if max_test_ids is not None:
        keep = set(sorted({r.pid for r in query})[:max_test_ids])
        query = [r for r in query if r.pid in keep]
        gallery = [r for r in gallery if r.pid in keep or r.pid == 0]
    multi_query = [r for r in dataset.multi_query if r.pid in {q.pid for q in query}]
    return replace(dataset, train=train, query=query, gallery=gallery, multi_query=multi_query)


def held_out_identities(train: list[ImageRecord], max_train_ids: int) -> list[ImageRecord]:
    """The training crops of the identities a run with ``data.max_train_ids=N`` never saw (all but the first N in
    pid order): a validation split with the benchmark's own cameras and conditions, for choosing anything (a
    clustering radius, say) without looking at the identities that are reported."""
    seen = _first_identities(train, max_train_ids)
    return [r for r in train if r.pid not in seen]


def _first_identities(records: list[ImageRecord], count: int) -> set[int]:
    """The first ``count`` pids in pid order: one rule for what a smaller run trains on and what it leaves out."""
    return set(sorted({r.pid for r in records})[:count])
