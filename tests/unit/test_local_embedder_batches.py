"""How the onnx runtime of the local embedder cuts texts, sorted by length, into batches."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tributary.embedding.local import TOKENS_PER_BATCH, batches_of


@given(st.lists(st.integers(min_value=2, max_value=256), max_size=300).map(sorted))
def test_batches_cover_every_text_once_in_order_within_the_token_budget(lengths: list[int]) -> None:
    batches = batches_of(lengths)
    assert [i for batch in batches for i in range(len(lengths))[batch]] == list(range(len(lengths)))
    for batch in batches:
        rows = lengths[batch]
        # Padded to its longest (last) text; a text alone may exceed the budget, never a batch of several.
        assert len(rows) == 1 or len(rows) * rows[-1] <= TOKENS_PER_BATCH


def test_short_texts_share_a_batch_and_long_ones_split() -> None:
    assert batches_of([10] * 100) == [slice(0, 100)]
    assert len(batches_of([256] * 16)) == 4
