"""Checks that need the dataset (dimensions, metadata schema, embedder), reported the way FastAPI reports body
errors: a 422 whose `detail` names the record index and field of each problem."""

from __future__ import annotations

from typing import Any

from events.commands import AnyEmbedder, OpenAIEmbedderConfig, VectorField, embedder_mismatch
from schemas.vectors import VectorRecord
from tributary.db.models import DatasetRow
from tributary.embedding import Embedders
from tributary.failures import Invalid

_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
}


def problem(loc: tuple[str | int, ...], msg: str) -> dict[str, Any]:
    return {"type": "value_error", "loc": ["body", *loc], "msg": msg}


def metadata_problems(
    metadata: dict[str, Any], schema: dict[str, str], loc: tuple[str | int, ...]
) -> list[dict[str, Any]]:
    problems = []
    for field, kind in schema.items():
        if field not in metadata or metadata[field] is None:
            continue
        value = metadata[field]
        if kind == "string_list":
            ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
        else:
            # bool is an int in Python; an integer or number field must not take true/false.
            ok = isinstance(value, _TYPES[kind]) and (kind == "boolean" or not isinstance(value, bool))
        if not ok:
            problems.append(problem((*loc, field), f"metadata field {field!r} must be {kind}"))
    return problems


def check_embedder(
    embedder: AnyEmbedder | None,
    dimensions: int,
    embedders: Embedders,
    loc: tuple[str | int, ...] = ("embedder",),
) -> None:
    """A new dataset's embedder (or a named field's, at `loc`) fits its width and this server can run it (its
    extra is installed, its endpoint configured). A URL of one's own is not accepted: the server calls only the
    operator's endpoints."""
    if embedder is None:
        return
    if isinstance(embedder, OpenAIEmbedderConfig) and embedder.base_url is not None:
        reason: str | None = "name an `endpoint` the operator configured; a `base_url` is not accepted"
    else:
        reason = embedder_mismatch(embedder, dimensions) or embedders.unavailable(embedder)
    if reason:
        raise Invalid([problem(loc, reason)])


def vector_fields(dataset: DatasetRow) -> dict[str, VectorField]:
    """The dataset's named vector fields, from its catalog row."""
    return {name: VectorField.model_validate(field) for name, field in (dataset.vectors or {}).items()}


def check_records(records: list[VectorRecord], dataset: DatasetRow, fields: dict[str, VectorField]) -> None:
    """A record needs a vector of the dataset's dimensions, or a text when the dataset has an embedder, or, in a
    dataset with named vector fields, a vector of one of them (given, its text embedded by the field's text
    embedder, or its image by the field's image embedder); the vectors of named fields it gives are of fields
    the dataset has (`fields`: its named vector fields), each of its dimensions, and its images of the dataset's
    image fields."""
    problems: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    embeds_named = any(field.text_embedder is not None for field in fields.values())
    for index, record in enumerate(records):
        loc: tuple[str | int, ...] = ("vectors", index)
        has_text = record.text is not None and bool(record.text.strip())
        carries_named = bool(record.vectors) or bool(record.images) or (embeds_named and has_text)
        if record.vector is None and carries_named and not (dataset.embedder and has_text):
            pass  # without the default vector: found through its named fields
        elif record.vector is None:
            if dataset.embedder is None:
                problems.append(
                    problem((*loc, "vector"), "a vector is required: this dataset has no embedder")
                )
            elif record.text is None:
                problems.append(
                    problem((*loc, "vector"), "give a vector, or a text for the dataset to embed")
                )
            elif not record.text.strip():
                problems.append(problem((*loc, "text"), "is blank: there is nothing to embed"))
        elif len(record.vector) != dataset.dimensions:
            problems.append(
                problem(
                    (*loc, "vector"),
                    f"has {len(record.vector)} dimensions, the dataset has {dataset.dimensions}",
                )
            )
        problems += _named_vector_problems(record, fields, loc)
        if record.id is not None:
            if record.id in seen:
                problems.append(problem((*loc, "id"), f"duplicates the id of record {seen[record.id]}"))
            seen[record.id] = index
        if record.metadata:
            problems += metadata_problems(record.metadata, dataset.metadata_schema, (*loc, "metadata"))
    if problems:
        raise Invalid(problems)


def _named_vector_problems(
    record: VectorRecord, fields: dict[str, VectorField], loc: tuple[str | int, ...]
) -> list[dict[str, Any]]:
    problems = []
    for name, vector in (record.vectors or {}).items():
        field = fields.get(name)
        if field is None:
            known = ", ".join(sorted(fields)) or "none"
            problems.append(
                problem((*loc, "vectors", name), f"the dataset has no such vector field (it has {known})")
            )
        elif len(vector) != field.dimensions:
            problems.append(
                problem(
                    (*loc, "vectors", name),
                    f"has {len(vector)} dimensions, the field has {field.dimensions}",
                )
            )
    for name in record.images or {}:
        field = fields.get(name)
        if field is None or field.image_embedder is None:
            known = ", ".join(sorted(n for n, f in fields.items() if f.image_embedder is not None)) or "none"
            problems.append(
                problem(
                    (*loc, "images", name),
                    f"the dataset has no image field {name!r} (a named field whose embedder embeds images; it "
                    f"has {known})",
                )
            )
    return problems
