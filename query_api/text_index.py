"""A BM25 index over a dataset's text field, for the query side's text and hybrid search.

Documents are addressed by *slot*, the projection's row slot (also the ANN label), a non-negative integer that is
reused once its row is deleted. Memory grows with the largest slot, so slots are expected to be dense.

Words. A text's words are its terms by the dataset's analyzer (`events.analysis`: folding, tokenization, stop
words, stemming), with their repeats; the filter operator `$match` compares the same terms. A query is the *set*
of its terms, so repeating a word in a query does not weigh it more; a query with no indexed term finds nothing. A
text without terms is not a document, like an absent one: it is not counted in N nor in the average length.

Scoring. Okapi BM25, summed over the query's words w that document d contains:

    idf(w) * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len(d) / avglen))

with tf the count of w in d, len(d) its number of words, avglen their mean over the N documents, and Lucene's
idf(w) = ln(1 + (N - df + 0.5) / (df + 0.5)), df the number of documents containing w, which stays positive
where the original idf turns negative for words in more than half of the documents. Lengths are exact (Lucene
rounds them to one byte), and the numerator keeps the classic (k1 + 1) factor (Lucene dropped it, which scales
every score alike). Statistics are those of the documents present when the search runs.

Layout. Each word has postings: parallel growable arrays of slot, tf, and the slot's generation when the entry
was written (4 bytes each: 12 bytes an entry), and each document the ids of its words, packed in a bytes object
(4 bytes a word and 33 for the object, where a numpy array would take 112). Replacing or deleting
a document bumps its slot's generation, which leaves its old entries stale without touching them, so a write
costs O(words of the document); the document frequency is kept exact, and a word's postings are compacted once
its stale entries reach a quarter of its live ones. A search scores the entries of the query's words (stale ones
weigh 0; with an allow-mask, only the allowed ones) into a dense array of scores over the slots and selects the
top k from it, so a filtered search ranks exactly the allowed documents.

Not thread-safe: `set`, `set_many` and `delete` must not run concurrently with anything else. `search` only
reads, so concurrent searches are safe under a readers-writer lock.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from events.analysis import PLAIN_WORDS, Analyzer, analyzer_for

Slots = npt.NDArray[np.int64]
Scores = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]
# A posting's arrays: 4 bytes an entry each. A tf is a count (exact in float32); a generation counts the writes of
# one slot, and an int32 would wrap after 2**31 of them.
_SLOT = np.int32
_TF = np.float32
_GEN = np.int32

# Postings are compacted when their stale entries reach a quarter of the live ones, and at least 16: compacting
# a rare word costs a dozen numpy calls, more than searching a few stale entries.
_STALE_FRACTION = 4
_MIN_STALE = 16
# Top-k selection splits the scores into groups of this many; see _top_k.
_GROUP = 64
_NO_SLOTS: Slots = np.empty(0, np.int64)
_NO_SCORES: Scores = np.empty(0, np.float64)
_NO_ENTRY_SLOTS: npt.NDArray[np.int32] = np.empty(0, _SLOT)
_NO_TFS: npt.NDArray[np.float32] = np.empty(0, _TF)
_NO_GENS: npt.NDArray[np.int32] = np.empty(0, _GEN)


class _Postings:
    """One word's entries; the first `size` of the arrays are in use, `live` of them not stale."""

    __slots__ = ("gens", "live", "size", "slots", "tfs")

    def __init__(self) -> None:
        # Empty arrays shared by every new posting, never written to: `reserve` replaces them before a write.
        self.slots, self.tfs, self.gens = _NO_ENTRY_SLOTS, _NO_TFS, _NO_GENS
        self.size = self.live = 0

    def extend(self, slots: Slots, tfs: npt.NDArray[np.int64], gens: npt.NDArray[Any]) -> None:
        n, end = self.size, self.size + len(slots)
        self.reserve(end)
        self.slots[n:end] = slots
        self.tfs[n:end] = tfs
        self.gens[n:end] = gens
        self.size = end
        self.live += len(slots)

    def compact(self, slot_gens: npt.NDArray[Any]) -> None:
        n = self.size
        keep = slot_gens[self.slots[:n]] == self.gens[:n]
        live = int(np.count_nonzero(keep))
        capacity = _capacity(live)
        slots, tfs, gens = np.empty(capacity, _SLOT), np.empty(capacity, _TF), np.empty(capacity, _GEN)
        slots[:live], tfs[:live], gens[:live] = self.slots[:n][keep], self.tfs[:n][keep], self.gens[:n][keep]
        self.slots, self.tfs, self.gens = slots, tfs, gens
        self.size = self.live = live

    def reserve(self, size: int) -> None:
        if size <= len(self.slots):
            return
        capacity = _capacity(size)
        for name in ("slots", "tfs", "gens"):
            old = getattr(self, name)
            new = np.empty(capacity, old.dtype)
            new[: self.size] = old[: self.size]
            setattr(self, name, new)


class TextIndex:
    """BM25 over texts addressed by slot; see the module docstring for words, scoring and thread safety."""

    def __init__(self, k1: float = 1.2, b: float = 0.75, analyzer: Analyzer | None = None) -> None:
        # k1 = 0 would give stale entries (tf 0) the weight 0/0, and b outside [0, 1] can make the length
        # normalisation negative.
        if not k1 > 0 or not 0 <= b <= 1:
            raise ValueError("BM25 needs k1 > 0 and 0 <= b <= 1")
        self.k1, self.b = float(k1), float(b)
        self.analyzer = analyzer or analyzer_for(PLAIN_WORDS)
        self._term_of: dict[str, int] = {}
        self._words: list[str] = []
        self._postings: list[_Postings] = []
        self._free_terms: list[int] = []
        # Per slot: its generation, the length of its (last) text, the ids of its words (int32, packed; None when
        # absent).
        self._gens = np.zeros(0, _GEN)
        self._lengths = np.zeros(0, np.float64)
        self._terms: list[bytes | None] = []
        # One past the largest slot ever used: the extent of every per-search array.
        self._extent = 0
        self._count = 0
        self._total_length = 0

    def __len__(self) -> int:
        return self._count

    def __contains__(self, slot: object) -> bool:
        if not isinstance(slot, int | np.integer) or not 0 <= slot < self._extent:
            return False
        return self._terms[int(slot)] is not None

    def set(self, slot: int, text: str | None) -> None:
        """Index `text` at `slot`, replacing what was there; None or a text without words removes it."""
        self._check_slot(slot)
        self._remove(slot)
        counts = Counter(self.analyzer.terms(text)) if text else None
        if not counts:
            return
        self._reserve_slots(slot + 1)
        gen = int(self._gens[slot])
        term_of, postings = self._term_of, self._postings
        terms = []
        # The hot loop of a write, inlined: a method call per word would cost a third of it.
        for word, tf in counts.items():
            term = term_of.get(word)
            if term is None:
                term = self._new_term(word)
            posting = postings[term]
            n = posting.size
            if n == len(posting.slots):
                posting.reserve(n + 1)
            posting.slots[n], posting.tfs[n], posting.gens[n] = slot, tf, gen
            posting.size, posting.live = n + 1, posting.live + 1
            terms.append(term)
        self._terms[slot] = np.array(terms, np.int32).tobytes()
        self._lengths[slot] = length = counts.total()
        self._count += 1
        self._total_length += length

    def delete(self, slot: int) -> None:
        """Remove the document at `slot`, if any."""
        self._check_slot(slot)
        self._remove(slot)

    def set_many(
        self, slots: Sequence[int] | npt.NDArray[np.integer[Any]], texts: Sequence[str | None]
    ) -> None:
        """`set` for many slots at once, as at start-up; when a slot repeats, its last text wins."""
        if len(slots) != len(texts):
            raise ValueError("set_many needs as many texts as slots")
        latest = dict(zip((int(slot) for slot in slots), texts, strict=True))
        for slot in latest:
            self._check_slot(slot)
        for slot in latest:
            self._remove(slot)
        # Word ids go into one flat list as each text is read: the texts' word strings would take ten times the
        # memory, and fewer objects alive make the garbage collector's passes cheaper.
        term_of, terms_of = self._term_of, self.analyzer.terms
        batch_slots: list[int] = []
        lengths_list: list[int] = []
        flat: list[int] = []
        for slot in sorted(latest):
            text = latest[slot]
            found = terms_of(text) if text else None
            if not found:
                continue
            known = list(map(term_of.get, found))
            ids = (
                [term if (term := term_of.get(w)) is not None else self._new_term(w) for w in found]
                if None in known
                else cast(list[int], known)
            )
            batch_slots.append(slot)
            lengths_list.append(len(found))
            flat.extend(ids)
        if not batch_slots:
            return
        batch = np.array(batch_slots, np.int64)
        lengths = np.array(lengths_list, np.int64)
        terms = np.array(flat, np.int64)
        self._reserve_slots(batch_slots[-1] + 1)
        # One key per (word, document) pair, sorted by word then slot; its count is the tf.
        width = len(batch)
        keys, tfs = np.unique(terms * width + np.repeat(np.arange(width), lengths), return_counts=True)
        pair_terms, pair_docs = np.divmod(keys, width)
        pair_slots = batch[pair_docs]
        pair_gens = self._gens[pair_slots]
        starts = np.flatnonzero(np.diff(pair_terms, prepend=-1))
        ends = np.append(starts[1:], len(keys))
        for term, start, end in zip(pair_terms[starts].tolist(), starts.tolist(), ends.tolist(), strict=True):
            self._postings[term].extend(pair_slots[start:end], tfs[start:end], pair_gens[start:end])
        # A document's word ids as they come in its text, repeats included: sorting by document too would cost
        # a second sort of the pairs.
        forward = np.split(terms.astype(np.int32), np.cumsum(lengths[:-1]))
        for slot, doc_terms in zip(batch_slots, forward, strict=True):
            self._terms[slot] = doc_terms.tobytes()
        self._lengths[batch] = lengths
        self._count += len(batch)
        self._total_length += int(lengths.sum())

    def search(self, query: str, k: int, allowed: Bools | None = None) -> tuple[Slots, Scores]:
        """The best `k` documents for `query` with a positive score, best first, ties by slot.

        `allowed` is a boolean mask over slots (from the metadata filter); slots beyond its end are not allowed.
        The result is the exact top k among the allowed documents.
        """
        if k < 0:
            raise ValueError("k must be >= 0")
        postings = [
            self._postings[t]
            for w in self.analyzer.term_set(query)
            if (t := self._term_of.get(w)) is not None
        ]
        if k == 0 or not postings:
            return _NO_SLOTS, _NO_SCORES
        extent = self._extent
        mask = None if allowed is None else _mask(allowed, extent)
        k1, count = self.k1, self._count
        # The length normalisation k1 * (1 - b + b * len / avglen), as base + per_word * len: for the entries
        # of rare words alone, or once for every slot when the entries are many.
        base, per_word = k1 * (1 - self.b), k1 * self.b * count / self._total_length
        entries = sum(posting.size for posting in postings)
        norms = None if entries < extent // 4 else base + per_word * self._lengths[:extent]
        scores = np.zeros(extent, np.float64)
        for posting in postings:
            df, n = posting.live, posting.size
            idf = math.log(1 + (count - df + 0.5) / (df + 0.5))
            slots, tfs = posting.slots[:n], posting.tfs[:n]
            live = self._gens.take(slots) == posting.gens[:n] if n > df else None
            if mask is not None:
                # flatnonzero and take: a boolean index is twice as slow on a mask that keeps rows at random.
                rows = np.flatnonzero(mask.take(slots) if live is None else mask.take(slots) & live)
                slots, tfs = slots.take(rows), tfs.take(rows)
            elif live is not None:
                # Cheaper than dropping them: stale entries weigh 0, and np.add.at adds a slot's entries up.
                tfs = tfs * live
            # Scored in float64, as the lengths and statistics are.
            tfs = tfs.astype(np.float64)
            weights = base + per_word * self._lengths.take(slots) if norms is None else norms.take(slots)
            weights += tfs
            np.divide(tfs * (idf * (k1 + 1)), weights, out=weights)
            np.add.at(scores, slots, weights)
        return _top_k(scores, k)

    def _check_slot(self, slot: int) -> None:
        if slot < 0:
            raise ValueError(f"slots are non-negative, not {slot}")

    def _remove(self, slot: int) -> None:
        terms = self._terms[slot] if slot < self._extent else None
        if terms is None:
            return
        self._terms[slot] = None
        self._gens[slot] += 1
        self._count -= 1
        # The length stays: stale entries still point at the slot, and their weight 0 / (0 + norm) needs a
        # positive norm, which a length of 0 does not give when b = 1.
        self._total_length -= int(self._lengths[slot])
        postings = self._postings
        for term in set(np.frombuffer(terms, np.int32).tolist()):
            posting = postings[term]
            live = posting.live = posting.live - 1
            if live == 0:
                self._drop_term(term)
            elif (stale := posting.size - live) >= _MIN_STALE and stale * _STALE_FRACTION >= live:
                posting.compact(self._gens)

    def _new_term(self, word: str) -> int:
        if self._free_terms:
            term = self._free_terms.pop()
            self._words[term] = word
            self._postings[term] = _Postings()
        else:
            term = len(self._postings)
            self._words.append(word)
            self._postings.append(_Postings())
        self._term_of[word] = term
        return term

    def _drop_term(self, term: int) -> None:
        # A word no document holds any more: forget it, so a churning vocabulary does not grow without bound.
        del self._term_of[self._words[term]]
        self._postings[term] = _Postings()
        self._free_terms.append(term)

    def _reserve_slots(self, extent: int) -> None:
        if extent <= self._extent:
            return
        if extent > len(self._gens):
            capacity = max(extent, 2 * len(self._gens))
            self._gens = np.concatenate([self._gens, np.zeros(capacity - len(self._gens), _GEN)])
            self._lengths = np.concatenate([self._lengths, np.zeros(capacity - len(self._lengths))])
        self._terms.extend([None] * (extent - self._extent))
        self._extent = extent


def _capacity(size: int) -> int:
    # Growing by a quarter keeps appends amortised O(1) and wastes less memory than doubling would.
    return max(4, size + size // 4)


def _mask(allowed: Bools, extent: int) -> Bools:
    if allowed.dtype != np.bool_ or allowed.ndim != 1:
        raise ValueError("allowed must be a one-dimensional boolean mask over slots")
    if len(allowed) >= extent:
        return allowed[:extent]
    mask = np.zeros(extent, np.bool_)
    mask[: len(allowed)] = allowed
    return mask


def _top_k(scores: Scores, k: int) -> tuple[Slots, Scores]:
    """The k best positive scores, best first, ties by slot.

    Sorting every scored slot costs milliseconds at 100k; instead a floor is found that at least k scores reach:
    split the scores into groups and take the k-th largest of the group maxima. Only the few slots at or above
    it are sorted.
    """
    groups = len(scores) // _GROUP
    maxima = scores[: groups * _GROUP].reshape(_GROUP, groups).max(axis=0)
    # Partitioning the positive maxima alone: introselect is slow on the many equal zeros.
    maxima = maxima[maxima > 0]
    floor = 0.0
    if len(maxima) > k:
        floor = float(np.partition(maxima, len(maxima) - k)[len(maxima) - k])
    candidates = np.flatnonzero(scores >= floor) if floor > 0 else np.flatnonzero(scores > 0)
    best = candidates[np.lexsort((candidates, -scores[candidates]))[:k]]
    return best, scores[best]
