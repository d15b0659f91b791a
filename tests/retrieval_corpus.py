"""A small real labelled retrieval set, built at test time from the running interpreter's standard library, and
the metrics to score a ranking against it.

Every public function, class and method of a fixed list of modules whose docstring has a summary and a body
gives one document: the body is the text that is searched, the summary is a query whose one relevant document
is that body. Docstrings change between Python versions, so the set is rebuilt on each run and nothing about
its exact content or size should be pinned.
"""

from __future__ import annotations

import importlib
import inspect
import math
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from types import ModuleType

# Importable on every platform and free of side effects on import; the order fixes the order of the set.
MODULES = (
    "abc",
    "argparse",
    "array",
    "ast",
    "asyncio",
    "base64",
    "binascii",
    "bisect",
    "calendar",
    "cmd",
    "codecs",
    "collections",
    "colorsys",
    "concurrent.futures",
    "configparser",
    "contextlib",
    "copy",
    "csv",
    "dataclasses",
    "datetime",
    "decimal",
    "difflib",
    "email.headerregistry",
    "email.message",
    "email.parser",
    "email.utils",
    "enum",
    "filecmp",
    "fnmatch",
    "fractions",
    "functools",
    "getopt",
    "glob",
    "graphlib",
    "gzip",
    "hashlib",
    "heapq",
    "hmac",
    "html",
    "http.client",
    "http.cookies",
    "inspect",
    "io",
    "ipaddress",
    "itertools",
    "json",
    "linecache",
    "logging",
    "mailbox",
    "math",
    "mimetypes",
    "netrc",
    "numbers",
    "operator",
    "os.path",
    "pathlib",
    "pickle",
    "plistlib",
    "pprint",
    "queue",
    "quopri",
    "random",
    "re",
    "reprlib",
    "sched",
    "secrets",
    "selectors",
    "shelve",
    "shlex",
    "shutil",
    "smtplib",
    "socket",
    "statistics",
    "string",
    "struct",
    "subprocess",
    "tarfile",
    "tempfile",
    "textwrap",
    "threading",
    "timeit",
    "tokenize",
    "traceback",
    "typing",
    "unittest",
    "urllib.parse",
    "urllib.request",
    "uuid",
    "warnings",
    "wave",
    "weakref",
    "xml.etree.ElementTree",
    "zipfile",
    "zlib",
)

MIN_BODY_WORDS = 15
MIN_TITLE_WORDS = 3
# A summary that runs longer than this is a paragraph of prose, not a title.
MAX_TITLE_WORDS = 25
# Bodies are cut to their opening, where a docstring explains its summary. Both retrievers see the same words
# (a small embedding model reads only 256 word pieces anyway), and embedding the cut bodies takes half the time:
# cutting at 40, 80, 150 words or not at all gave the same figures, within 0.01 MRR.
MAX_BODY_WORDS = 80

# Summaries that could head any docstring: as queries they have no one right answer.
GENERIC_TITLES = frozenset(
    {
        "docstring inherited",
        "implement abstract method",
        "return self",
        "return repr(self)",
        "return str(self)",
        "return hash(self)",
    }
)
# A summary that is really a signature: "name(arg, ...)", "B.isalnum() -> bool", "m=None, name=None, ...".
SIGNATURE = re.compile(r"^\S*\(|->|=")
# A full stop that ends a sentence ("e.g. the" does not): followed by a space and a capital.
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")


@dataclass(frozen=True)
class Doc:
    id: str
    title: str
    body: str


@dataclass(frozen=True)
class Query:
    text: str
    relevant: str


def stdlib_corpus(limit: int = 1000) -> list[Doc]:
    """The documents of MODULES, in module order then name order, at most `limit` of them."""
    candidates = [doc for doc in _documented(_objects()) if _answerable(doc)]
    titles = Counter(doc.title.lower() for doc in candidates)
    bodies = Counter(doc.body for doc in candidates)
    # Both copies of a repeated summary or body go: either would make a query with two right answers.
    unique = [doc for doc in candidates if titles[doc.title.lower()] == 1 and bodies[doc.body] == 1]
    return unique[:limit]


def title_queries(docs: Sequence[Doc], count: int | None = None) -> list[Query]:
    """The titles of `count` documents spread evenly over the set, or of every document.

    Fusion moves MRR by a few hundredths on this set, about the standard error of a 200-query sample: a
    comparison between searches wants every document as a query (titles are short, so that is cheap).
    """
    picked = (
        range(len(docs))
        if count is None or count >= len(docs)
        else (i * len(docs) // count for i in range(count))
    )
    return [Query(text=docs[index].title, relevant=docs[index].id) for index in picked]


def recall_at(k: int, rankings: Sequence[Sequence[str]], relevant: Sequence[str]) -> float:
    """The share of queries whose relevant document is in their first k results."""
    return _mean([1.0 if answer in ranking[:k] else 0.0 for ranking, answer in _pairs(rankings, relevant)])


def mrr(rankings: Sequence[Sequence[str]], relevant: Sequence[str]) -> float:
    """Mean reciprocal rank of each query's relevant document (0 for a query whose ranking lacks it)."""
    return _mean([1.0 / rank if rank else 0.0 for rank in _ranks(rankings, relevant)])


def ndcg_at(k: int, rankings: Sequence[Sequence[str]], relevant: Sequence[str]) -> float:
    """Mean nDCG@k with one relevant document per query, whose ideal DCG is therefore 1."""
    return _mean([1.0 / math.log2(rank + 1) if 0 < rank <= k else 0.0 for rank in _ranks(rankings, relevant)])


def _objects() -> Iterator[tuple[str, object]]:
    seen: set[int] = set()
    for module_name in MODULES:
        module = importlib.import_module(module_name)
        for name in sorted(_public_names(module)):
            value = getattr(module, name, None)
            # A name re-exported by a later module is documented where it was first met.
            if id(value) in seen or not _defined_in(value, module):
                continue
            seen.add(id(value))
            yield f"{module_name}.{name}", value
            if inspect.isclass(value):
                for member_name, member in sorted(vars(value).items()):
                    # Plain class attributes are left out: "x".__doc__ is the docstring of str.
                    if not member_name.startswith("_") and _documents_itself(member):
                        yield f"{module_name}.{name}.{member_name}", member


def _public_names(module: ModuleType) -> list[str]:
    declared = getattr(module, "__all__", None)
    if declared is not None:
        return list(declared)
    return [name for name in vars(module) if not name.startswith("_")]


def _defined_in(value: object, module: ModuleType) -> bool:
    if not (inspect.isclass(value) or inspect.isroutine(value)):
        return False
    owner = getattr(value, "__module__", None) or ""
    if owner == "builtins":
        return False
    if hasattr(module, "__all__"):
        return True
    # Without __all__, a module's namespace also holds what it imported; its own C accelerator (_bisect for
    # bisect) still counts as the module itself.
    top = module.__name__.split(".")[0]
    return owner.lstrip("_").split(".")[0] == top


def _documents_itself(member: object) -> bool:
    return (
        inspect.isroutine(member)
        or inspect.isclass(member)
        or inspect.isgetsetdescriptor(member)
        or isinstance(member, property | staticmethod | classmethod)
    )


def _documented(objects: Iterator[tuple[str, object]]) -> Iterator[Doc]:
    for object_id, value in objects:
        # The object's own docstring only: inspect.getdoc would hand a method its base class's.
        raw = getattr(_unwrapped(value), "__doc__", None)
        if not isinstance(raw, str):
            continue
        first, _, rest = inspect.cleandoc(raw).partition("\n\n")
        # The summary is the first sentence of the first paragraph: some summaries wrap onto a second line,
        # and some docstrings go on with no blank line after their summary.
        summary, *more = SENTENCE_END.split(" ".join(first.split()), maxsplit=1)
        body = " ".join([*more, rest]).split()[:MAX_BODY_WORDS]
        yield Doc(id=object_id, title=summary, body=" ".join(body))


def _unwrapped(value: object) -> object:
    if isinstance(value, staticmethod | classmethod):
        return value.__func__
    if isinstance(value, property):
        return value.fget
    return value


def _answerable(doc: Doc) -> bool:
    words = len(doc.title.split())
    return (
        MIN_TITLE_WORDS <= words <= MAX_TITLE_WORDS
        and len(doc.body.split()) >= MIN_BODY_WORDS
        and doc.title.lower().rstrip(".") not in GENERIC_TITLES
        and not SIGNATURE.search(doc.title)
    )


def _pairs(rankings: Sequence[Sequence[str]], relevant: Sequence[str]) -> list[tuple[Sequence[str], str]]:
    if len(rankings) != len(relevant):
        raise ValueError(f"{len(rankings)} rankings for {len(relevant)} queries")
    return list(zip(rankings, relevant, strict=True))


def _ranks(rankings: Sequence[Sequence[str]], relevant: Sequence[str]) -> list[int]:
    """Each query's 1-based rank of its relevant document; 0 where it was not returned."""
    return [
        list(ranking).index(answer) + 1 if answer in ranking else 0
        for ranking, answer in _pairs(rankings, relevant)
    ]


def _mean(values: list[float]) -> float:
    if not values:
        raise ValueError("no queries to score")
    return sum(values) / len(values)
