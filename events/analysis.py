"""Text analysis: how a dataset's texts and queries become the terms that BM25 and the filter operator `$match`
compare. A dataset chooses its analysis when it is created (`TextAnalysis`, a field of the create request and of
the CreateDataset command); both searches use the same one, so what text search finds, `$match` keeps.

The steps, in order:

1. Folding: case folding (`str.casefold`: "FILE" is "file", "Straße" is "strasse"); with `unicode_folding`,
   Unicode compatibility normalisation first (NFKC: "ﬁle" is "file", "²" is "2"); with `ascii_folding`, accents and other combining marks are dropped too
   ("café" is "cafe", "naïve" is "naive"), as Lucene's ASCII folding does for Latin letters.
2. Tokenization. `identifiers`: a token is a run of letters and digits, or several such runs joined by single
   `-`, `.`, `_` or `/` characters (`x86-64`, `utf-8`, `os.path`, `x86_64`, `3.11`, `tcp/ip`). A joined token
   yields itself and each of its parts, so "x86-64" is found by "x86-64" and also by "x86" or "64", and "x86_64"
   by "x86" and "64". Tokens with digits stay whole (`gtk3`, `ipv6`). `words` is the tokenization of the datasets
   created before analysis was configurable: the runs of Unicode word characters (`\\w+`, so "x86-64" is "x86"
   and "64"), kept for them so that their searches do not change.
3. Stop words: with `stop_words`, the language's list (shipped for English: Lucene's English list plus the
   remnants "s" and "t" of "it's" and "don't"), or the words given, are dropped.
4. Stemming: with a `language`, Snowball's stemmer for it (PyStemmer) reduces each token that has no digit and no
   joiner to its stem, so "running", "runs" and "run" are one term. Identifiers are left alone: "gtk3" is not
   stemmed to "gtk", nor "x86-64" cut.

A text's terms are the analysed tokens in order with their repeats (BM25 counts them); `$match` compares sets.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from functools import lru_cache
from typing import Literal, get_args

import Stemmer
from pydantic import BaseModel, ConfigDict, Field, model_validator

# Snowball's languages, as PyStemmer names them.
Language = Literal[
    "arabic", "armenian", "basque", "catalan", "czech", "danish", "dutch", "english", "esperanto", "estonian",
    "finnish", "french", "german", "greek", "hindi", "hungarian", "indonesian", "irish", "italian", "lithuanian",
    "nepali", "norwegian", "persian", "polish", "portuguese", "romanian", "russian", "serbian", "spanish",
    "swedish", "tamil", "turkish", "yiddish",
]  # fmt: skip
Tokenizer = Literal["identifiers", "words"]
MAX_STOP_WORDS = 10_000

# Lucene's EnglishAnalyzer.ENGLISH_STOP_WORDS_SET, and "s" and "t", which "it's" and "don't" leave behind.
ENGLISH_STOP_WORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "but",
        "by",
        "for",
        "if",
        "in",
        "into",
        "is",
        "it",
        "no",
        "not",
        "of",
        "on",
        "or",
        "such",
        "that",
        "the",
        "their",
        "then",
        "there",
        "these",
        "they",
        "this",
        "to",
        "was",
        "will",
        "with",
        "s",
        "t",
    ]
)
STOP_WORDS: dict[str, frozenset[str]] = {"english": ENGLISH_STOP_WORDS}

_WORD = re.compile(r"\w+")
# Letters and digits (\w without the underscore), joined by single -, ., _ or /.
_IDENTIFIER = re.compile(r"[^\W_]+(?:[-._/][^\W_]+)*")
_PART = re.compile(r"[^\W_]+")


class TextAnalysis(BaseModel):
    """A dataset's text analysis; see the module docstring for what each step does."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tokenizer: Tokenizer = Field(
        default="identifiers", description="identifiers keeps x86-64 and os.path whole (and their parts)"
    )
    language: Language | None = Field(default="english", description="Snowball stemming; null: none")
    stop_words: bool | tuple[str, ...] = Field(
        default=True, description="true: the language's list (English has one); false: none; or the words"
    )
    unicode_folding: bool = Field(default=True, description='NFKC: "ﬁle" is "file"')
    ascii_folding: bool = Field(default=True, description='Drop accents: "café" matches "cafe"')

    @model_validator(mode="after")
    def _stop_words_known(self) -> TextAnalysis:
        if self.stop_words is True and self.language not in STOP_WORDS:
            raise ValueError(
                f"no stop word list ships for {self.language or 'no language'}: "
                f"set stop_words to false or to a list of words (lists ship for {', '.join(STOP_WORDS)})"
            )
        if isinstance(self.stop_words, tuple) and len(self.stop_words) > MAX_STOP_WORDS:
            raise ValueError(f"at most {MAX_STOP_WORDS} stop words")
        return self


# The analysis of datasets created before it was configurable (their specs and events have no such field).
PLAIN_WORDS = TextAnalysis(
    tokenizer="words", language=None, stop_words=False, unicode_folding=False, ascii_folding=False
)
# For new datasets: chosen by bench/relevance.py on the tuning halves of its labelled sets.
DEFAULT_ANALYSIS = TextAnalysis()

assert set(STOP_WORDS) <= set(get_args(Language))


class Analyzer:
    """Turns texts into terms by a `TextAnalysis`; `analyzer_for` hands out one per analysis."""

    def __init__(self, analysis: TextAnalysis) -> None:
        self.analysis = analysis
        # PyStemmer's stemmers are not thread-safe (their buffers and cache change on each call), and searches
        # analyse their queries on several threads: one stemmer per thread.
        self._per_thread = threading.local()
        stop_words: frozenset[str] | tuple[str, ...] = (
            STOP_WORDS[analysis.language or ""] if analysis.stop_words is True else analysis.stop_words or ()
        )
        # Stop words go through the same folding as the texts, so "Über" given as a stop word drops "uber".
        self._stop_words = frozenset(self._fold(word) for word in stop_words)

    def terms(self, text: str) -> list[str]:
        """The text's terms in order, with their repeats."""
        folded = self._fold(text)
        if self.analysis.tokenizer == "words":
            tokens = _WORD.findall(folded)
        else:
            tokens = []
            for token in _IDENTIFIER.findall(folded):
                tokens.append(token)
                if not token.isalnum():
                    tokens.extend(_PART.findall(token))
        if self._stop_words:
            tokens = [token for token in tokens if token not in self._stop_words]
        if self.analysis.language is not None:
            stem = self._stemmer(self.analysis.language).stemWord
            tokens = [token if not token.isalpha() else stem(token) for token in tokens]
        return tokens

    def term_set(self, text: str) -> frozenset[str]:
        """The text's distinct terms, which `$match` compares."""
        return frozenset(self.terms(text))

    def _stemmer(self, language: str) -> Stemmer.Stemmer:
        stemmer = getattr(self._per_thread, "stemmer", None)
        if stemmer is None:
            stemmer = self._per_thread.stemmer = Stemmer.Stemmer(language)
        return stemmer

    def _fold(self, text: str) -> str:
        folded = (unicodedata.normalize("NFKC", text) if self.analysis.unicode_folding else text).casefold()
        if not self.analysis.ascii_folding or folded.isascii():
            return folded
        return "".join(c for c in unicodedata.normalize("NFKD", folded) if not unicodedata.combining(c))


@lru_cache(maxsize=64)
def analyzer_for(analysis: TextAnalysis) -> Analyzer:
    """The analyzer of an analysis, shared: building a stemmer costs more than analysing a short text."""
    return Analyzer(analysis)
