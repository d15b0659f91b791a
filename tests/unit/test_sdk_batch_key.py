"""The SDK's per-batch Idempotency-Key: the same batch of the same stream gets the same key, anything else
another one."""

from __future__ import annotations

from typing import Any

from tributary_client._wire import batch_key, record_body

BATCH = [
    {"id": "a", "vector": [0.5, 1.0], "text": "apples", "metadata": {"n": 1, "tags": ["x"]}},
    {"id": "b", "vector": [0.25, 2.0]},
]


def key(records: list[dict[str, Any]], prefix: str = "p", index: int = 0) -> str:
    return batch_key(prefix, index, [record_body(record) for record in records])


def test_the_same_batch_gets_the_same_key_whatever_the_order_of_fields() -> None:
    reordered = [dict(reversed(list(record.items()))) for record in BATCH]
    assert key(BATCH) == key(reordered)


def test_any_difference_gets_another_key() -> None:
    variants = [
        [{**BATCH[0], "metadata": {"n": 2, "tags": ["x"]}}, BATCH[1]],
        [{**BATCH[0], "vector": [0.5, 1.5]}, BATCH[1]],
        [{**BATCH[0], "text": "apple"}, BATCH[1]],
        [{**BATCH[0], "id": "c"}, BATCH[1]],
        # A string moved from one field (or record) to the next is a different batch.
        [{**BATCH[0], "id": "ap", "text": "ples"}, BATCH[1]],
        [BATCH[1], BATCH[0]],
        BATCH[:1],
    ]
    keys = {key(BATCH), key(BATCH, prefix="q"), key(BATCH, index=1), *(key(v) for v in variants)}
    assert len(keys) == 3 + len(variants)
