"""Labelled retrieval sets for bench/relevance.py, built from public text that ships on this machine, and their
embeddings by the packaged local model, cached on disk.

- `stdlib`: Python's standard library docstrings, summary -> body (tests/retrieval_corpus.py builds it).
- `man`: Debian's manual pages in section 1: the description of the NAME line ("ls \\- list directory contents")
  is the query, the opening of the DESCRIPTION section its one relevant document. Pages are read from their roff
  source (man or mdoc macros), without groff: requests are dropped, the text of font macros kept, escapes
  resolved to the characters they stand for or dropped.

Each set's queries are split into a tuning half and a test half by a hash of the document id, so the split is
deterministic and does not depend on the order or the size of the set. Every query searches the whole corpus.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import os
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from tests.retrieval_corpus import MAX_BODY_WORDS, Doc, Query, stdlib_corpus, title_queries

MAN_DIR = Path("/usr/share/man/man1")
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "tributary" / "relevance"
MODEL = "all-minilm-l6-v2"
MIN_QUERY_WORDS = 2
# Many pages (most of gcloud's) describe themselves in one sentence.
MIN_MAN_BODY_WORDS = 8
# A passage of man_passages: short, as embedding long texts here runs at a quarter of the speed of short ones.
PASSAGE_WORDS = 24

# Escapes: \fB \f(CW \f[CR] (fonts), \s-1 (sizes), \*(xx \*[name] (strings), \(xx \[xx] (special characters),
# \" (comment to the end of the line), \& \| \^ \c \: (zero-width), \e (backslash), \- (minus).
_SPECIAL = {
    "em": " - ",
    "en": "-",
    "hy": "-",
    "aq": "'",
    "dq": '"',
    "lq": '"',
    "rq": '"',
    "oq": "'",
    "cq": "'",
}
_ESCAPE = re.compile(
    r"\\\"(?P<comment>.*)$"
    r"|\\f(?:\[[^\]]*\]|\(..|.)"
    r"|\\s[-+]?\d+"
    r"|\\\*(?:\[[^\]]*\]|\(..|.)"
    r"|\\(?:\((?P<special>..)|\[(?P<named>[^\]]*)\])"
    r"|\\(?P<char>.)"
)
_ALTERNATING_FONTS = frozenset({"BR", "RB", "IR", "RI", "BI", "IB"})
_FONT_MACROS = frozenset({"B", "I", "SM", "SB", *_ALTERNATING_FONTS})
_MACRO_ARG = re.compile(r'"([^"]*)"|(\S+)')
# mdoc's callable macros, which may appear among the arguments of another: dropped, their arguments kept.
_MDOC_CALLABLE = frozenset(
    [
        "Ac",
        "Ad",
        "An",
        "Ao",
        "Aq",
        "Ar",
        "At",
        "Bc",
        "Bo",
        "Bq",
        "Brc",
        "Bro",
        "Brq",
        "Bsx",
        "Bx",
        "Cd",
        "Cm",
        "Dc",
        "Do",
        "Dq",
        "Dv",
        "Dx",
        "Ec",
        "Em",
        "En",
        "Eo",
        "Er",
        "Ev",
        "Fa",
        "Fc",
        "Fl",
        "Fn",
        "Fo",
        "Fr",
        "Fx",
        "Ic",
        "Li",
        "Lk",
        "Ms",
        "Mt",
        "Nm",
        "No",
        "Ns",
        "Nx",
        "Oc",
        "Oo",
        "Op",
        "Ot",
        "Ox",
        "Pa",
        "Pc",
        "Pf",
        "Po",
        "Pq",
        "Qc",
        "Ql",
        "Qo",
        "Qq",
        "Sc",
        "So",
        "Sq",
        "St",
        "Sx",
        "Sy",
        "Ta",
        "Tn",
        "Ux",
        "Va",
        "Vt",
        "Xc",
        "Xo",
        "Xr",
    ]
)


@dataclass(frozen=True)
class LabelledSet:
    name: str
    docs: list[Doc]
    tuning: list[Query]
    test: list[Query]


def stdlib_set() -> LabelledSet:
    docs = stdlib_corpus(limit=100_000)
    return _split("stdlib", docs, title_queries(docs))


def man_set(limit: int = 6000) -> LabelledSet:
    """At most `limit` pages, spread evenly over the answerable ones in name order."""
    pages = [page for path in sorted(MAN_DIR.glob("*.1*")) if (page := _man_page(path)) is not None]
    titles = Counter(page.title.lower() for page in pages)
    bodies = Counter(page.body for page in pages)
    # As for the stdlib set: a repeated description or body would give a query two right answers.
    unique = [page for page in pages if titles[page.title.lower()] == 1 and bodies[page.body] == 1]
    docs = unique if len(unique) <= limit else [unique[i * len(unique) // limit] for i in range(limit)]
    return _split("man", docs, title_queries(docs))


def man_passages(limit: int, words: int = PASSAGE_WORDS) -> list[str]:
    """Up to `limit` distinct passages of `words` words cut from every section of the manual pages (all
    sections, pages in name order, spread evenly when there are more): a larger real corpus than the labelled
    sets, for benches that want many rows rather than relevance labels."""
    passages: dict[str, None] = {}
    for path in sorted(Path("/usr/share/man").glob("man[1-8]/*")):
        if path.is_symlink():
            continue
        try:
            source = gzip.decompress(path.read_bytes()).decode("utf-8", "replace")
        except (OSError, EOFError):
            continue
        for section in _sections(source).values():
            tokens = section.split()
            for start in range(0, len(tokens) - MIN_MAN_BODY_WORDS + 1, words):
                passages[" ".join(tokens[start : start + words])] = None
    found = list(passages)
    return found if len(found) <= limit else [found[i * len(found) // limit] for i in range(limit)]


def embeddings(texts: Sequence[str]) -> npt.NDArray[np.float32]:
    """The packaged model's normalised embeddings of `texts`, computed once and kept under CACHE."""
    key = hashlib.sha256("\x00".join([MODEL, *texts]).encode()).hexdigest()[:24]
    path = CACHE / f"{key}.npy"
    if path.exists():
        return np.load(path)
    from events.commands import LocalEmbedderConfig
    from tributary.embedding.local import LocalEmbedder

    vectors = asyncio.run(LocalEmbedder(LocalEmbedderConfig(kind="local", model=MODEL)).embed(list(texts)))
    CACHE.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial.npy")
    np.save(partial, vectors)
    partial.replace(path)
    return vectors


def _split(name: str, docs: list[Doc], queries: list[Query]) -> LabelledSet:
    def tuning(query: Query) -> bool:
        return hashlib.sha256(query.relevant.encode()).digest()[0] % 2 == 0

    return LabelledSet(name, docs, [q for q in queries if tuning(q)], [q for q in queries if not tuning(q)])


def _man_page(path: Path) -> Doc | None:
    if path.is_symlink():
        return None  # an alias of another page
    try:
        source = gzip.decompress(path.read_bytes()).decode("utf-8", "replace")
    except (OSError, EOFError):
        return None
    sections = _sections(source)
    name, description = sections.get("NAME", ""), sections.get("DESCRIPTION", "")
    # "ls - list directory contents"; mdoc gives the description in .Nd, which _sections marks with " - ".
    _, dash, title = name.partition(" - ")
    title = " ".join(title.split())
    body = description.split()
    if not dash or len(title.split()) < MIN_QUERY_WORDS or len(body) < MIN_MAN_BODY_WORDS:
        return None
    return Doc(id=path.name.removesuffix(".gz"), title=title, body=" ".join(body[:MAX_BODY_WORDS]))


def _sections(source: str) -> dict[str, str]:
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in source.splitlines():
        if line.startswith((".SH", ".Sh")):
            heading = _text(" ".join(_args(line[3:]))).strip().upper()
            current = sections.setdefault(heading, []) if heading not in sections else None
            continue
        if current is None:
            continue
        if line.startswith((".", "'")):
            macro, _, rest = line[1:].strip().partition(" ")
            if macro == "Nd":
                current.append(" - " + _text(rest))
            elif macro in _FONT_MACROS:
                # Alternating fonts (.BR ls (1) is "ls(1)") join their arguments without a space.
                current.append(_text(("" if macro in _ALTERNATING_FONTS else " ").join(_args(rest))))
            elif macro in _MDOC_CALLABLE:
                current.append(_text(" ".join(arg for arg in _args(rest) if arg not in _MDOC_CALLABLE)))
            elif macro in ("IP", "TP", "SS", "Ss", "It", "Dl"):
                current.append(_text(" ".join(arg for arg in _args(rest)[:1] if arg not in _MDOC_CALLABLE)))
            continue
        current.append(_text(line))
    return {heading: " ".join(" ".join(lines).split()) for heading, lines in sections.items()}


def _args(rest: str) -> list[str]:
    return [quoted if quoted or not bare else bare for quoted, bare in _MACRO_ARG.findall(rest)]


def _text(line: str) -> str:
    return _ESCAPE.sub(_unescape, line)


def _unescape(found: re.Match[str]) -> str:
    if found["comment"] is not None:
        return ""
    if found["special"] or found["named"]:
        return _SPECIAL.get(found["special"] or found["named"], "")
    char = found["char"]
    if char is None:
        return ""
    return {"-": "-", "e": "\\", "(": "", " ": " ", "~": " ", "0": " "}.get(char, "")
