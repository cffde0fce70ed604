"""What a model's pedestrian attributes are: groups of mutually exclusive values ("gender": male / female).

A model with an attribute head names its schema in its spec (``attributes: market1501``), so a model file alone
says what each of its attribute outputs means; training labels, evaluation, the store and search by description all
read the same schema. Every group is one softmax over its values, so a group's probabilities sum to one and a
description's probability is the product over the groups it names.

The Market-1501 schema follows Lin et al.'s labels (Pattern Recognition 2019): ten groups read from one label each,
and one colour group per body part built from the 8 upper / 9 lower yes-no colour labels, plus ``other`` for the
identities whose labels mark no colour (10 % of them): a person's clothes have one colour here, as in the authors'
evaluation, which scores the colour groups as 8- and 9-way choices.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from reidkit.errors import ConfigError
from reidkit.registry import Registry


@dataclass(frozen=True)
class AttributeGroup:
    """One softmax of the attribute head: ``values`` in output order; ``question`` says it in words for help text."""

    name: str
    values: tuple[str, ...]
    question: str


@dataclass(frozen=True)
class AttributeSchema:
    """The groups of one labelled dataset's attributes, in the order of the head's outputs."""

    name: str
    groups: tuple[AttributeGroup, ...]

    @property
    def sizes(self) -> list[int]:
        """Each group's number of values: the widths of the head's softmax blocks."""
        return [len(g.values) for g in self.groups]

    @property
    def names(self) -> list[str]:
        return [g.name for g in self.groups]

    def group(self, name: str) -> AttributeGroup:
        for group in self.groups:
            if group.name == name:
                return group
        raise ConfigError(f"no attribute {name!r}; the attributes are {', '.join(self.names)}")

    def choices(self) -> str:
        """Every group with its values, one per clause: what an error about a description lists."""
        return "; ".join(f"{g.name}={'|'.join(g.values)}" for g in self.groups)

    def parse_description(self, terms: Iterable[str], field: str = "attr") -> dict[str, str]:
        """``["gender=female", "upper=red"]`` as ``{"gender": "female", "upper": "red"}``, checked against the schema.

        ``field`` is what the caller calls one term (the CLI's ``--attr``, the API's ``attributes``), so the one-line
        error names what the user typed.
        """
        description: dict[str, str] = {}
        for term in terms:
            name, sep, value = str(term).partition("=")
            name, value = name.strip().lower(), value.strip().lower()
            if not sep or not name or not value:
                raise ConfigError(f"{field} {term!r} must be NAME=VALUE; choices: {self.choices()}")
            group = next((g for g in self.groups if g.name == name), None)
            if group is None:
                raise ConfigError(f"{field} {term!r}: no attribute {name!r}; choices: {self.choices()}")
            if value not in group.values:
                raise ConfigError(f"{field} {term!r}: {name} is one of {', '.join(group.values)}")
            if name in description and description[name] != value:
                raise ConfigError(f"{field}: {name} is given twice ({description[name]} and {value})")
            description[name] = value
        if not description:
            raise ConfigError(f"{field}: describe the person with at least one NAME=VALUE; choices: {self.choices()}")
        return description


def _yes_no(name: str, question: str) -> AttributeGroup:
    return AttributeGroup(name, ("no", "yes"), question)


MARKET1501_UPPER_COLOURS = ("black", "white", "red", "purple", "yellow", "gray", "blue", "green")
MARKET1501_LOWER_COLOURS = ("black", "white", "pink", "purple", "yellow", "gray", "blue", "green", "brown")

MARKET1501 = AttributeSchema(
    "market1501",
    (
        AttributeGroup("gender", ("male", "female"), "gender"),
        AttributeGroup("age", ("young", "teenager", "adult", "old"), "age group"),
        AttributeGroup("hair", ("short", "long"), "hair length"),
        AttributeGroup("sleeve", ("long", "short"), "sleeve length"),
        AttributeGroup("lower_length", ("long", "short"), "length of the lower-body clothing"),
        AttributeGroup("lower_type", ("dress", "pants"), "type of the lower-body clothing"),
        _yes_no("hat", "wearing a hat"),
        _yes_no("backpack", "carrying a backpack"),
        _yes_no("bag", "carrying a bag"),
        _yes_no("handbag", "carrying a handbag"),
        AttributeGroup("upper", (*MARKET1501_UPPER_COLOURS, "other"), "colour of the upper-body clothing"),
        AttributeGroup("lower", (*MARKET1501_LOWER_COLOURS, "other"), "colour of the lower-body clothing"),
    ),
)

ATTRIBUTE_SCHEMAS: Registry[AttributeSchema] = Registry("attribute schema", ConfigError)
ATTRIBUTE_SCHEMAS.add("market1501", MARKET1501, "Market-1501 attributes (Lin et al. 2019): 12 groups, 27 labels")


def most_probable(schema: AttributeSchema, probabilities: Sequence[float]) -> dict[str, tuple[str, float]]:
    """One image's most probable value of each group, with its probability: ``{"gender": ("female", 0.93)}``."""
    found = {}
    for group, block in zip(schema.groups, group_slices(schema.sizes), strict=True):
        scores = list(probabilities[block])
        best = max(range(len(scores)), key=scores.__getitem__)
        found[group.name] = (group.values[best], float(scores[best]))
    return found


def description_log_probability(
    schema: AttributeSchema, probabilities: np.ndarray, description: Mapping[str, str]
) -> np.ndarray:
    """(N,) log of the probability that each row shows the described person: the product over the described groups
    of the described value's probability (the groups' softmaxes are read as independent). A log, so that ranking
    by it is ranking by the joint probability without underflow for long descriptions."""
    slices = dict(zip(schema.names, group_slices(schema.sizes), strict=True))
    total = np.zeros(len(probabilities), dtype=np.float64)
    for name, value in description.items():
        column = slices[name].start + schema.group(name).values.index(value)
        total += np.log(np.clip(np.asarray(probabilities[:, column], dtype=np.float64), 1e-12, 1.0))
    return total


def aggregate_probabilities(schema: AttributeSchema, probabilities: np.ndarray) -> np.ndarray:
    """One track's attribute probabilities from its crops' (n, W): per group, the mean of the crops' distributions
    weighted by each crop's confidence in that group (its largest probability there), so that a blurred or occluded
    crop that cannot tell counts less than a clear one. Each group still sums to one, so a track has one most
    probable colour per body part."""
    rows = np.asarray(probabilities, dtype=np.float64).reshape(-1, sum(schema.sizes))
    if len(rows) == 0:
        raise ValueError("a track's attributes need at least one crop")
    track = np.empty(rows.shape[1], dtype=np.float64)
    for block in group_slices(schema.sizes):
        weights = rows[:, block].max(axis=1)
        track[block] = weights @ rows[:, block] / weights.sum()
    return track.astype(np.float32)


def group_slices(sizes: Sequence[int]) -> list[slice]:
    """Where each group's block lies in the head's concatenated output."""
    slices, start = [], 0
    for size in sizes:
        slices.append(slice(start, start + size))
        start += size
    return slices
