"""The policy search on its development list: ``python -m bench.retrieval``.

Which library ranks best, how fast, and where the threshold goes.

Three rankers over the same units and the same fugashi lemmas (``bot.policy.search``):
BM25 by ``bm25s`` (Lucene's idf), BM25 by ``rank-bm25`` (``BM25Okapi``) and
scikit-learn's ``TfidfVectorizer`` (cosine); each on lines (a section's line with its
label) and on whole sections, with and without the members' words
(``search.MEMBER_WORDS``). Scored on bench/data/retrieval_dev.yml: top-1 section
accuracy over the questions a policy answers, the time to build the five indexes and
per question. Then, for the product's ranker, precision and coverage at each
threshold of the best hit's coverage of the question, counting the questions a policy
does not answer and the unrelated ones as answers that should not have been given.

The product uses ``rank-bm25`` (pinned); ``bm25s`` is not a dependency: install it
(``pip install bm25s==0.3.16``) to compare, or its rows are skipped.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from bot.policy.passages import Passage, passages
from bot.policy.profiles.loader import load_profile
from bot.policy.search import MEMBER_WORDS, Bm25Scorer, PolicyIndex, Scorer, query_lemmas
from bot.settings import PROJECT_ROOT

DEV_PATH = PROJECT_ROOT / "bench" / "data" / "retrieval_dev.yml"
REPEATS = 3  # builds and searches timed this many times; the median counts
THRESHOLDS = (0.0, 0.2, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7)


class Bm25sScorer:
    """BM25 of bm25s (Lucene's variant: its idf is never negative)."""

    def __init__(self, units: Sequence[Sequence[str]]):
        """Index ``units``."""
        import bm25s

        self._retriever = bm25s.BM25(method="lucene")
        # bm25s leaves a unit without words out of its matrix: a placeholder keeps it.
        self._retriever.index([list(unit) or ["\u0000"] for unit in units], show_progress=False)

    def scores(self, query: Sequence[str]) -> np.ndarray:
        """BM25 of every unit."""
        return np.asarray(self._retriever.get_scores(list(query)), dtype=float)


class TfidfScorer:
    """scikit-learn's TF-IDF (sublinear tf, l2) and cosine similarity."""

    def __init__(self, units: Sequence[Sequence[str]]):
        """Index ``units``."""
        from sklearn.feature_extraction.text import TfidfVectorizer

        self._vectorizer = TfidfVectorizer(
            analyzer=_identity, sublinear_tf=True, token_pattern=None
        )
        self._matrix = self._vectorizer.fit_transform([list(unit) for unit in units])

    def scores(self, query: Sequence[str]) -> np.ndarray:
        """Cosine of every unit with the query."""
        vector = self._vectorizer.transform([list(query)])
        return np.asarray((self._matrix @ vector.T).toarray()).ravel()


def _identity(unit: list[str]) -> list[str]:
    return unit


RANKERS: dict[str, tuple[str | None, Callable[[Sequence[Sequence[str]]], Scorer]]] = {
    "bm25s (BM25, Lucene idf)": ("bm25s", Bm25sScorer),
    "rank-bm25 (BM25Okapi)": ("rank_bm25", Bm25Scorer),
    "scikit-learn TfidfVectorizer": ("sklearn", TfidfScorer),
}


@dataclass(frozen=True)
class Case:
    """One question asked of one organization, and the sections that answer it."""

    org_id: str
    text: str
    expected: frozenset[str]  # empty: the policy does not say; the assistant should not quote


def key(passage: Passage) -> str:
    """How the dev list names a section."""
    return passage.label or passage.document


def load_cases(path: Path = DEV_PATH) -> list[Case]:
    """The dev list as cases, unrelated questions asked of every organization."""
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    cases = []
    for question in raw["questions"]:
        for org_id, expected in question["expect"].items():
            labels = [] if expected is None else expected
            labels = [labels] if isinstance(labels, str) else labels
            cases.append(Case(org_id, question["text"], frozenset(labels)))
    orgs = sorted({case.org_id for case in cases})
    cases.extend(Case(org, text, frozenset()) for text in raw["unrelated"] for org in orgs)
    return cases


@dataclass(frozen=True)
class Outcome:
    """The best text hit for one case."""

    case: Case
    label: str | None
    coverage: float

    @property
    def correct(self) -> bool:
        """The best hit is a section that answers the question."""
        return self.label is not None and self.label in self.case.expected


@dataclass(frozen=True)
class Run:
    """One ranker and settings over the whole dev list."""

    name: str
    granularity: str
    member_words: bool
    outcomes: list[Outcome]
    build_s: float
    query_ms: list[float]

    @property
    def answerable(self) -> list[Outcome]:
        """The cases some section answers."""
        return [o for o in self.outcomes if o.case.expected]

    @property
    def accuracy(self) -> float:
        """Top-1 section accuracy on the answerable cases."""
        answerable = self.answerable
        return sum(o.correct for o in answerable) / len(answerable)


def evaluate(
    name: str,
    scorer: Callable[[Sequence[Sequence[str]]], Scorer],
    granularity: str,
    member_words: bool,
    cases: Sequence[Case],
) -> Run:
    """Build the five indexes with ``scorer`` and ask every case."""
    found = {org: passages(load_profile(org)) for org in sorted({c.org_id for c in cases})}
    words = MEMBER_WORDS if member_words else {}
    PolicyIndex(found[cases[0].org_id], scorer, granularity, words)  # imports, tagger
    builds = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        indexes = {org: PolicyIndex(f, scorer, granularity, words) for org, f in found.items()}
        builds.append(time.perf_counter() - started)
    build_s = statistics.median(builds)
    outcomes, query_ms = [], []
    for case in cases:
        lemmas = query_lemmas(case.text)
        timings = []
        for _ in range(REPEATS):
            started = time.perf_counter()
            hits = indexes[case.org_id].search_lemmas(lemmas, ("text",), 1)
            timings.append((time.perf_counter() - started) * 1000)
        query_ms.append(statistics.median(timings))
        best = hits[0] if hits else None
        outcomes.append(
            Outcome(case, key(best.passage) if best else None, best.coverage if best else 0.0)
        )
    return Run(name, granularity, member_words, outcomes, build_s, query_ms)


def threshold_rows(run: Run) -> list[str]:
    """Precision and coverage of the answers at each threshold."""
    rows = []
    answerable = run.answerable
    unanswerable = [o for o in run.outcomes if not o.case.expected]
    for threshold in THRESHOLDS:
        answered = [o for o in run.outcomes if o.coverage >= threshold and o.label]
        right = [o for o in answered if o.correct]
        answered_good = [o for o in answerable if o.coverage >= threshold and o.label]
        wrongly = [o for o in unanswerable if o.coverage >= threshold and o.label]
        precision = len(right) / len(answered) if answered else 1.0
        rows.append(
            f"| {threshold:.2f} | {len(answered)} | {precision:.3f} "
            f"| {len(right) / len(answerable):.3f} | {len(answered_good) / len(answerable):.3f} "
            f"| {len(wrongly)} of {len(unanswerable)} |"
        )
    return rows


def main(argv: Sequence[str] | None = None) -> None:
    """Print the report (Markdown)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--product", default="rank-bm25 (BM25Okapi)", choices=RANKERS)
    parser.add_argument("--misses", action="store_true", help="list the product's misses")
    args = parser.parse_args(argv)
    cases = load_cases()
    answerable = sum(1 for case in cases if case.expected)
    print(
        f"{len({c.text for c in cases})} questions, {len(cases)} question-organization pairs "
        f"({answerable} answered by a section, {len(cases) - answerable} not)\n"
    )
    print(
        "| ranker | units | members' words | top-1 accuracy | build 5 indexes (s) "
        "| search per question, median / max (ms) |"
    )
    print("|---|---|---|---|---|---|")
    product: Run | None = None
    for name, (module, scorer) in RANKERS.items():
        if module and importlib.util.find_spec(module) is None:
            print(f"| {name} | — | — | not installed | — | — |")
            continue
        for granularity in ("line", "section"):
            for member_words in (True, False):
                run = evaluate(name, scorer, granularity, member_words, cases)
                print(
                    f"| {name} | {granularity} | {'yes' if member_words else 'no'} "
                    f"| {run.accuracy:.3f} ({sum(o.correct for o in run.answerable)}"
                    f"/{len(run.answerable)}) | {run.build_s:.2f} "
                    f"| {statistics.median(run.query_ms):.2f} / {max(run.query_ms):.2f} |"
                )
                if name == args.product and granularity == "line" and member_words:
                    product = run
    if product is None:
        return
    print(f"\nThreshold on the best hit's coverage ({args.product}, lines, members' words):\n")
    print(
        "| threshold | answered | precision | right answers / answerable "
        "| answered / answerable | answered though not answerable |"
    )
    print("|---|---|---|---|---|---|")
    for row in threshold_rows(product):
        print(row)
    if args.misses:
        print()
        for outcome in product.outcomes:
            if outcome.case.expected and not outcome.correct:
                print(
                    f"- {outcome.case.org_id}: {outcome.case.text} → {outcome.label} "
                    f"({outcome.coverage:.2f}); expected {sorted(outcome.case.expected)}"
                )
            if not outcome.case.expected and outcome.label and outcome.coverage >= 0.4:
                print(
                    f"- (not answerable) {outcome.case.org_id}: {outcome.case.text} → "
                    f"{outcome.label} ({outcome.coverage:.2f})"
                )


if __name__ == "__main__":
    main()
