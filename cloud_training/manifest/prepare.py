"""The pure steps of ``manifest prepare``: join jobs, discard, relabel, split. No I/O here; ``io.py`` does that.

Why these steps (from the AWS sample this project grew from): labelling was done in several small Ground Truth jobs,
some labels were bad and discarded by hand, and each job had one class ``storage box`` while the real class (colour)
was in per-line metadata. SageMaker's SSD then needs contiguous class ids and a train/validation split in which every
class appears on both sides, or the validation mAP says nothing about that class.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import random
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cloud_training import storage
from cloud_training.errors import ManifestError
from cloud_training.manifest.jobs import newer
from cloud_training.manifest.records import Record


@dataclass(frozen=True)
class Replacement:
    """A ``source-ref`` seen in two jobs: the newer label wins (``rule`` says how that was decided)."""

    source_ref: str
    dropped: str
    kept: str
    rule: str = "later in the order given"


@dataclass(frozen=True)
class Invalid:
    """A line that could not be used, kept for the report when ``--skip-invalid`` is on."""

    where: str
    problem: str


@dataclass(frozen=True)
class Labelled:
    """A record after relabelling: its class names per box, and the class that names the whole line (if any)."""

    record: Record
    names: tuple[str, ...]
    line_class: str | None


def image_id(ref: str) -> str:
    """``s3://b/frames/blue_box_1_000023.jpg`` → ``blue_box_1_000023`` (what people write in discard lists)."""
    name = storage.basename(ref)
    stem, dot, _ = name.rpartition(".")
    return stem if dot else name


def join(records: Iterable[Record]) -> tuple[list[Record], list[Replacement]]:
    """One record per image: of two lines for the same image the one with the newer ``creation-date`` wins (a
    relabelling job, whatever its file is called); equal or missing dates leave it to the order given."""
    by_ref: dict[str, Record] = {}
    replaced: list[Replacement] = []
    for record in records:
        previous = by_ref.get(record.resolved_ref)
        if previous is None:
            by_ref[record.resolved_ref] = record
            continue
        wins, rule = newer(record, previous)
        if wins:
            replaced.append(Replacement(record.resolved_ref, previous.where, record.where, rule))
            del by_ref[record.resolved_ref]
            by_ref[record.resolved_ref] = record
        else:
            replaced.append(Replacement(record.resolved_ref, record.where, previous.where, rule))
    return list(by_ref.values()), replaced


def parse_discard(text: str) -> frozenset[str]:
    """Discard entries, one a line: image ids, file names or ``source-ref``s; blanks and ``#`` comments skipped."""
    entries = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return frozenset(entry for entry in entries if entry)


def discard(records: Sequence[Record], entries: frozenset[str]) -> tuple[list[Record], list[Record], list[str]]:
    """Split into (kept, discarded) and list the entries that matched no image, which usually means a typo."""
    kept: list[Record] = []
    dropped: list[Record] = []
    used: set[str] = set()
    for record in records:
        keys = {
            record.source_ref,
            record.resolved_ref,
            storage.basename(record.resolved_ref),
            image_id(record.resolved_ref),
        }
        hits = keys & entries
        if hits:
            dropped.append(record)
            used |= hits
        else:
            kept.append(record)
    return kept, dropped, sorted(entries - used)


def parse_class_map(text: str) -> dict[str, int]:
    """``"blue box=0,yellow box=1"`` → ``{"blue box": 0, "yellow box": 1}``; ids must be 0..n-1, each used once,
    because SageMaker's SSD takes ``num_classes`` and indexes its class head by id."""
    mapping: dict[str, int] = {}
    for item in text.split(","):
        name, equals, number = item.partition("=")
        name = name.strip()
        if not equals or not name or not number.strip().isdigit():
            raise ValueError(f"expected NAME=ID pairs separated by commas, got {item.strip()!r}")
        if name in mapping:
            raise ValueError(f"class {name!r} is listed twice")
        mapping[name] = int(number)
    if sorted(mapping.values()) != list(range(len(mapping))):
        raise ValueError(f"class ids must be 0..{len(mapping) - 1}, each once (got {sorted(mapping.values())})")
    return mapping


def _line_names(record: Record) -> tuple[str, ...]:
    """Each box's class name in the line's own class-map; a class_id outside it is an error (with or without
    --class-from: it means the labels and the map disagree)."""
    line_map = record.metadata.get("class-map", {})
    names = []
    for index, box in enumerate(record.boxes):
        name = line_map.get(str(box.class_id))
        if not isinstance(name, str):
            raise ManifestError(
                f"{record.where}: box {index + 1} has class_id {box.class_id}, not in the line's class-map"
            )
        names.append(name)
    return tuple(names)


def _class_names(record: Record, class_from: Sequence[str]) -> tuple[tuple[str, ...], str | None]:
    """The class name of each box and of the line, from metadata keys (``--class-from``) or the line's class-map."""
    original = _line_names(record)
    if class_from:
        parts = []
        for key in class_from:
            value = record.data.get(key)
            if not isinstance(value, (str, int)) or isinstance(value, bool) or str(value).strip() == "":
                if not record.boxes:
                    return (), None
                raise ManifestError(f"{record.where}: no '{key}' metadata to build the class name from (--class-from)")
            parts.append(str(value).strip())
        name = " ".join(parts)
        return tuple(name for _ in record.boxes), name
    distinct = set(original)
    return original, distinct.pop() if len(distinct) == 1 else None


def check_no_merge(records: Sequence[Record], names: Sequence[tuple[str, ...]], class_from: Sequence[str]) -> None:
    """--class-from may split a class (one "storage box" into "blue box" and "yellow box") but never merge two:
    boxes the labellers told apart ("storage box", "pallet") must not get one name."""
    if not class_from:
        return
    first: dict[tuple[str, str], str] = {}  # (new name, original name) -> first line
    originals: dict[str, str] = {}  # new name -> the first original name seen for it
    for record, new_names in zip(records, names):
        for original, new in zip(_line_names(record), new_names):
            first.setdefault((new, original), record.where)
            seen = originals.setdefault(new, original)
            if seen != original:
                raise ManifestError(
                    f"{record.where}: --class-from {','.join(class_from)} names class {original!r} {new!r}, as it "
                    f"names {seen!r} at {first[(new, seen)]}: two labelled classes would merge into one; add a "
                    "metadata key that tells them apart, or leave out --class-from"
                )


def relabel(
    records: Sequence[Record],
    class_from: Sequence[str],
    class_map: dict[str, int] | None,
    skip_invalid: bool,
) -> tuple[list[Labelled], dict[int, str], list[Invalid]]:
    """Give every box its class id from the final class map and rewrite ``<label>-metadata.class-map`` to that map.

    Without ``class_map`` the ids are assigned in sorted name order, so the same data always gives the same ids.
    """
    named: list[tuple[Record, tuple[str, ...], str | None]] = []
    invalid: list[Invalid] = []
    for record in records:
        try:
            names, line_class = _class_names(record, class_from)
            if class_map is not None:
                for index, name in enumerate(names):
                    if name not in class_map:
                        known = ", ".join(sorted(class_map))
                        raise ManifestError(
                            f"{record.where}: box {index + 1} has unknown class {name!r} (--class-map has: {known})"
                        )
        except ManifestError as error:
            if not skip_invalid:
                raise
            invalid.append(Invalid(record.where, str(error).split(": ", 1)[1]))
            continue
        named.append((record, names, line_class))
    check_no_merge([record for record, _, _ in named], [names for _, names, _ in named], class_from)
    if class_map is None:
        seen = sorted({name for _, names, _ in named for name in names})
        class_map = {name: index for index, name in enumerate(seen)}
    by_id = {index: name for name, index in sorted(class_map.items(), key=lambda item: item[1])}
    rewritten = {str(index): name for index, name in by_id.items()}
    labelled = []
    for record, names, line_class in named:
        data = copy.deepcopy(record.data)
        for annotation, name in zip(data[record.label_attribute]["annotations"], names):
            annotation["class_id"] = class_map[name]
        data[f"{record.label_attribute}-metadata"]["class-map"] = dict(rewritten)
        boxes = tuple(dataclasses.replace(box, class_id=class_map[name]) for box, name in zip(record.boxes, names))
        labelled.append(Labelled(dataclasses.replace(record, data=data, boxes=boxes), names, line_class))
    return labelled, by_id, invalid


def _stratum(item: Labelled) -> str:
    """The split key: the set of classes on the image; empty images by their line class, so negatives of each scene
    are spread over both splits too."""
    if item.names:
        return "+".join(sorted(set(item.names)))
    return f"(empty){' ' + item.line_class if item.line_class else ''}"


def _quotas(sizes: dict[str, int], fraction: float) -> dict[str, int]:
    """Validation count per stratum, proportional, summing to round(fraction × total) (largest remainders first)."""
    total = sum(sizes.values())
    target = math.floor(fraction * total + 0.5)
    exact = {key: fraction * size for key, size in sizes.items()}
    quotas = {key: math.floor(value) for key, value in exact.items()}
    order = sorted(sizes, key=lambda key: (-(exact[key] - quotas[key]), key))
    for key in order[: max(0, target - sum(quotas.values()))]:
        quotas[key] += 1
    return quotas


def split(items: Sequence[Labelled], fraction: float, seed: int) -> tuple[list[Labelled], list[Labelled]]:
    """Deterministic stratified split: the same input and seed give the same split whatever the input order.

    Each stratum is sorted by image then shuffled with a seed derived from ``seed`` and the stratum, and its first
    ``fraction`` goes to validation. Then any class missing from a side gets one image moved over, so every class
    is in both splits. The output keeps the input order within each split.
    """
    if not 0.0 < fraction < 1.0:
        raise ManifestError(f"--validation-fraction must be between 0 and 1 (got {fraction})")
    groups: dict[str, list[Labelled]] = defaultdict(list)
    for item in items:
        groups[_stratum(item)].append(item)
    for key, group in groups.items():
        group.sort(key=lambda item: item.record.resolved_ref)
        random.Random(f"{seed}:{key}").shuffle(group)
    quotas = _quotas({key: len(group) for key, group in groups.items()}, fraction)
    validation_refs = {item.record.resolved_ref for key in sorted(groups) for item in groups[key][: quotas[key]]}
    shuffled = [item for key in sorted(groups) for item in groups[key]]
    images_per_class = Counter(name for item in items for name in set(item.names))
    for name in sorted(images_per_class):
        if images_per_class[name] < 2:
            raise ManifestError(f"class {name!r} is on only one image: it cannot be in both train and validation")
        with_class = [item for item in shuffled if name in item.names]
        if not any(item.record.resolved_ref in validation_refs for item in with_class):
            validation_refs.add(with_class[0].record.resolved_ref)
        if all(item.record.resolved_ref in validation_refs for item in with_class):
            validation_refs.discard(with_class[-1].record.resolved_ref)
    train = [item for item in items if item.record.resolved_ref not in validation_refs]
    validation = [item for item in items if item.record.resolved_ref in validation_refs]
    return train, validation


def split_three(
    items: Sequence[Labelled], validation_fraction: float, test_fraction: float, seed: int
) -> tuple[list[Labelled], list[Labelled], list[Labelled]]:
    """Train, validation and (with ``test_fraction`` > 0) a test split, each stratified like :func:`split`: the test
    split is taken first, then validation from the rest, both fractions of the whole."""
    if test_fraction <= 0.0:
        train, validation = split(items, validation_fraction, seed)
        return train, validation, []
    if validation_fraction + test_fraction >= 1.0:
        raise ManifestError(f"--validation-fraction {validation_fraction} and --test-fraction {test_fraction} leave "
                            "nothing to train on")
    rest, test = split(items, test_fraction, seed)
    train, validation = split(rest, validation_fraction / (1.0 - test_fraction), seed)
    return train, validation, test


def count(items: Sequence[Labelled]) -> dict[str, object]:
    """Images, empty images and boxes of a split, in total and per class."""
    classes: dict[str, dict[str, int]] = {}
    for item in items:
        for name in sorted(set(item.names)):
            entry = classes.setdefault(name, {"images": 0, "boxes": 0})
            entry["images"] += 1
        for name in item.names:
            classes[name]["boxes"] += 1
    return {
        "images": len(items),
        "empty": sum(1 for item in items if not item.names),
        "boxes": sum(len(item.names) for item in items),
        "classes": dict(sorted(classes.items())),
    }
