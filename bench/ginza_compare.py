"""ja_ginza's pre-trained vectors against today's pipeline: ``python -m bench.ginza_compare``.

Issue 21, part 5. The candidate is bench/configs/ginza.yml: config.yml's NLU pipeline
plus SpacyNLP (the spaCy package ``ja_ginza``) and :class:`GinzaTokenFeaturizer`, whose
300-dimensional word vectors go into DIET as dense features. It needs an environment
with ``spacy>=3.4,<3.5``, ``ginza==5.1.3`` and ``ja-ginza==5.1.3`` (the project's does not
have them; docs/benchmarks.md, "Pre-trained Japanese representation (ja-ginza)", says how
it was made). The baseline is a model trained with config.yml on the same data.

    python -m bench.ginza_compare train --out /tmp/ginza-models
    python -m bench.ginza_compare compare --baseline B.tar.gz --candidate C.tar.gz \
        [--training-json /tmp/ginza-models/nlu-ginza.training.json] [--words FILE] [--lean]

``compare`` scores both models on bench/data/nlu_holdout.yml with `rasa test nlu`
(:mod:`bench.nlu`), and in one child process per model and round it loads the model,
parses the holdout and the intent items of the members' words dev set (if given) and
times ~200 parses after a warm-up; the child's VmHWM is its peak memory. ``--lean`` adds
the candidate model served with ja_ginza loaded without its pipes
(:func:`load_ja_ginza_lean`). Every figure is also printed as a ratio against the
baseline of the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import importlib.metadata
import json
import logging
import math
import os
import resource
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.nlu.constants import FEATURIZER_CLASS_ALIAS, TOKENS_NAMES
from rasa.nlu.featurizers.dense_featurizer.spacy_featurizer import SpacyFeaturizer
from rasa.nlu.tokenizers.tokenizer import Tokenizer
from rasa.nlu.utils.spacy_utils import SpacyNLP
from rasa.shared.nlu.constants import FEATURE_TYPE_SENTENCE, FEATURE_TYPE_SEQUENCE, TEXT
from rasa.shared.nlu.training_data.features import Features
from rasa.shared.nlu.training_data.message import Message

from bench.latency import seeded_sample
from bench.nlu import HOLDOUT_PATH, TRAINING_DATA, NluScores, holdout_texts, read_results
from bench.report import num, table, times
from bench.servers import child_env, run_command
from bench.stats import percentile, ratio
from bench.training import COMMAND_TIMEOUT_S, rasa_command, relative, train
from bot.settings import PROJECT_ROOT

logger = logging.getLogger(__name__)

CANDIDATE_CONFIG = PROJECT_ROOT / "bench" / "configs" / "ginza.yml"
CANDIDATE_LABEL = "nlu-ginza"
WORDS_PATH = PROJECT_ROOT / "bench" / "data" / "members_words.yml"
MESSAGES = 200  # timed parses per model and round
WARMUP = 10  # parses before the timed ones
SEED = 21
# The packages the candidate loads besides the project's: SpacyNLP reads ja_ginza's
# weights and Sudachi's dictionary from them, not from the Rasa model file.
CANDIDATE_PACKAGES = ("ja-ginza", "ginza", "SudachiDict-core", "SudachiPy", "spacy", "thinc")
CORE_PARTS = ("components/train_RulePolicy", "components/domain_provider")
# ja_ginza's pipes, none of which SpacyFeaturizer's static vectors need.
LEAN_EXCLUDE = [
    "tok2vec",
    "parser",
    "attribute_ruler",
    "ner",
    "morphologizer",
    "compound_splitter",
    "bunsetu_recognizer",
]


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER, is_trainable=False)
class GinzaTokenFeaturizer(SpacyFeaturizer):
    """SpacyFeaturizer's word vectors, one per token of the pipeline's own tokenizer.

    Rasa's SpacyFeaturizer gives one vector per spaCy token, so it needs SpacyTokenizer,
    and Rasa allows one tokenizer. Here the tokens stay the project's (fugashi): each
    gets the mean vector of the ginza tokens its characters overlap. A ginza token with
    no vector of its own (ja_ginza's vectors are keyed by surface form, so 「ｶｲｼ」 or
    「ＡＢ」 miss) takes the vector of its Sudachi normalized form or lemma if there is
    one. The sentence feature is the mean of the message's non-zero ginza vectors.
    """

    @classmethod
    def required_components(cls) -> list[type]:
        """SpacyNLP for the doc, a tokenizer for the tokens."""
        return [SpacyNLP, Tokenizer]

    def _set_spacy_features(self, message: Message, attribute: str = TEXT) -> None:
        doc = self._get_doc(message, attribute)
        tokens = message.get(TOKENS_NAMES[attribute]) or []
        if doc is None or not tokens or doc.vocab.vectors_length == 0:
            return
        width = doc.vocab.vectors_length
        spans = [
            (token.idx, token.idx + len(token.text), _vector(token))
            for token in doc
            if token.text and token.text.strip()
        ]
        rows = []
        for token in tokens:
            overlapping = [
                vector for start, end, vector in spans if start < token.end and end > token.start
            ]
            rows.append(np.mean(overlapping, axis=0) if overlapping else np.zeros(width))
        sequence = np.array(rows, dtype=np.float32)
        pooled = np.array([vector for _, _, vector in spans]) if spans else sequence
        sentence = self.aggregate_sequence_features(pooled, self.pooling_operation)
        alias = self._config[FEATURIZER_CLASS_ALIAS]
        message.add_features(Features(sequence, FEATURE_TYPE_SEQUENCE, attribute, alias))
        message.add_features(Features(sentence, FEATURE_TYPE_SENTENCE, attribute, alias))


def _vector(token: Any) -> np.ndarray:
    """A spaCy token's vector, else its normalized form's or lemma's, else zeros."""
    if token.has_vector:
        return np.asarray(token.vector)
    vocab = token.vocab
    for form in (token.norm_, token.lemma_):
        if form and vocab.has_vector(form):
            return np.asarray(vocab.get_vector(form))
    return np.zeros(vocab.vectors_length, dtype=np.float32)


# --- measuring one model (in a child process) -----------------------------------------


def words_items(path: Path) -> list[dict[str, str]]:
    """The items of the members' words dev set that expect an intent."""
    loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return [item for item in loaded.get("items") or [] if item.get("intent")]


def holdout_items() -> list[tuple[str, str]]:
    """Text and intent of every example of the held-out split."""
    from rasa.shared.nlu.training_data.loading import load_data

    return [
        (str(message.get("text")), str(message.get("intent")))
        for message in load_data(str(HOLDOUT_PATH)).training_examples
        if message.get("text")
    ]


def _peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load_ja_ginza_lean() -> None:
    """Makes SpacyNLP load ja_ginza without its pipes (its tokenizer and vectors only).

    Rasa's SpacyNLP runs every pipe but the parser (tok2vec, ner, morphologizer, ...),
    though SpacyFeaturizer reads only the tokens' static vectors, which the tokenizer
    and the vocabulary give. Patched into the measuring process only: the trained model
    is the same, and its features are too (the comparison checks the predictions).
    """
    import spacy
    from rasa.nlu.utils import spacy_utils

    def load_model(name: str) -> spacy_utils.SpacyModel:
        return spacy_utils.SpacyModel(model=spacy.load(name, exclude=LEAN_EXCLUDE), model_name=name)

    spacy_utils.SpacyNLP.load_model = staticmethod(load_model)


def measure(model: Path, words: Path | None, messages: int, lean: bool) -> dict[str, Any]:
    """Loads ``model``, parses the holdout and the words items, times ``messages`` parses."""
    from rasa.core.agent import Agent
    from rasa.nlu.classifiers.fallback_classifier import (
        is_fallback_classifier_prediction,
        undo_fallback_prediction,
    )
    from rasa.utils.log_utils import configure_structlog

    # Quiet, as a server is: Rasa's per-message debug lines would be timed too.
    logging.getLogger().setLevel(logging.WARNING)
    configure_structlog(logging.WARNING)
    if lean:
        load_ja_ginza_lean()
    started = time.perf_counter()
    agent = Agent.load(str(model))
    load_s = time.perf_counter() - started
    loop = asyncio.new_event_loop()

    def parse(text: str) -> dict[str, Any]:
        return loop.run_until_complete(agent.parse_message(text))

    def classify(items: list[tuple[str, str]]) -> dict[str, Any]:
        expected, predicted, answered = [], [], 0
        for text, intent in items:
            parsed = parse(text)
            fallback = is_fallback_classifier_prediction(parsed)
            if fallback:  # as `rasa test nlu` does: the intent the fallback shadowed
                parsed = undo_fallback_prediction(parsed)
            name = str((parsed.get("intent") or {}).get("name"))
            expected.append(intent)
            predicted.append(name)
            answered += int(name == intent and not fallback)
        return {"expected": expected, "predicted": predicted, "answered": answered}

    results: dict[str, Any] = {"model": str(model), "lean": lean, "load_s": load_s}
    results["holdout"] = classify(holdout_items())
    if words is not None:
        items = words_items(words)
        results["words"] = classify([(str(i["text"]), str(i["intent"])) for i in items])
    sample = seeded_sample(holdout_texts(), WARMUP + messages, SEED)
    for text in sample[:WARMUP]:
        parse(text)
    seconds = []
    wall_started = time.perf_counter()
    for text in sample[WARMUP:]:
        started = time.perf_counter()
        parse(text)
        seconds.append(time.perf_counter() - started)
    results["wall_s"] = time.perf_counter() - wall_started
    results["seconds"] = seconds
    results["peak_rss_mib"] = _peak_rss_mib()
    loop.close()
    return results


# --- the comparison ---------------------------------------------------------------------


def _env() -> dict[str, str]:
    path = os.environ.get("PYTHONPATH")
    return child_env(
        {"PYTHONPATH": f"{PROJECT_ROOT}{os.pathsep}{path}" if path else str(PROJECT_ROOT)}
    )


def holdout_scores(name: str, model: Path, out_dir: Path) -> NluScores:
    """`rasa test nlu` of ``model`` on the held-out split, read as bench.nlu reads it."""
    results = out_dir / "nlu-results" / name
    results.mkdir(parents=True, exist_ok=True)
    test = ["test", "nlu", "--model", str(model), "--nlu", str(HOLDOUT_PATH), "--out", str(results)]
    command = rasa_command(*test, "--no-plot")
    run_command(f"evaluating {name}", command, _env(), COMMAND_TIMEOUT_S, PROJECT_ROOT)
    return read_results(results)


def measure_in_child(
    model: Path, words: Path | None, out: Path, messages: int, lean: bool
) -> dict[str, Any]:
    """:func:`measure` in a fresh process (so that its peak memory is the model's)."""
    command = [sys.executable, "-m", "bench.ginza_compare", "measure", str(model)]
    command += ["--json", str(out), "--messages", str(messages)]
    command += (["--words", str(words)] if words else []) + (["--lean"] if lean else [])
    subprocess.run(command, check=True, env=_env(), cwd=PROJECT_ROOT, timeout=COMMAND_TIMEOUT_S)
    return dict(json.loads(out.read_text(encoding="utf-8")))


def model_sizes(model: Path) -> tuple[int, int]:
    """The model file's bytes and the uncompressed bytes of its NLU part."""
    with tarfile.open(model) as archive:
        nlu = sum(
            member.size
            for member in archive.getmembers()
            if member.isfile() and not member.name.lstrip("/").startswith(CORE_PARTS)
        )
    return model.stat().st_size, nlu


def package_bytes(names: tuple[str, ...]) -> dict[str, int]:
    """Installed size of each package (bytes of its files), where it is installed."""
    sizes = {}
    for name in names:
        try:
            distribution = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        total = 0
        for file in distribution.files or []:
            located = Path(str(distribution.locate_file(file)))
            if located.is_file():
                total += located.stat().st_size
        sizes[f"{name} {distribution.version}"] = total
    return sizes


def classification(found: dict[str, Any]) -> tuple[float, float, float]:
    """Accuracy, macro-F1 (as `rasa test nlu` computes them) and the answered share."""
    from rasa.model_testing import get_evaluation_metrics

    expected, predicted = found["expected"], found["predicted"]
    report, _, _, accuracy = get_evaluation_metrics(expected, predicted, output_dict=True)
    assert isinstance(report, dict)
    return accuracy, float(report["macro avg"]["f1-score"]), found["answered"] / len(expected)


def mcnemar_p(first: list[bool], second: list[bool]) -> tuple[int, int, float]:
    """Items only ``second`` got right, only ``first`` did, and McNemar's exact p."""
    gained = sum(1 for a, b in zip(first, second, strict=True) if b and not a)
    lost = sum(1 for a, b in zip(first, second, strict=True) if a and not b)
    n, k = gained + lost, min(gained, lost)
    p = min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2**n) if n else 1.0
    return gained, lost, p


@dataclass
class Variant:
    """One measured column: a model, loaded with stock SpacyNLP or lean."""

    key: str
    title: str
    model: Path
    lean: bool = False
    runs: list[dict[str, Any]] = field(default_factory=list)

    def latency_ms(self, pct: float) -> float:
        """``pct``-th percentile of the timed parses of every round."""
        return percentile([s for run in self.runs for s in run["seconds"]], pct) * 1000

    def throughput(self) -> float:
        """Parses per second of wall time, one after the other."""
        parses = sum(len(run["seconds"]) for run in self.runs)
        return parses / sum(run["wall_s"] for run in self.runs)

    def peak_mib(self) -> float:
        """The highest VmHWM of its measuring processes."""
        return max(run["peak_rss_mib"] for run in self.runs)

    def load_s(self) -> float:
        """The fastest load of the model."""
        return min(run["load_s"] for run in self.runs)

    def right(self, part: str) -> list[bool]:
        """Whether each item of ``part`` (holdout, words) was classified right (round 1)."""
        found = self.runs[0][part]
        return [a == b for a, b in zip(found["expected"], found["predicted"], strict=True)]


def compare(args: argparse.Namespace) -> None:
    """Scores and times the models and prints the tables."""
    out_dir: Path = args.out
    out_dir.mkdir(parents=True, exist_ok=True)
    variants = [
        Variant("baseline", "baseline (config.yml)", args.baseline.resolve()),
        Variant("candidate", "candidate (ginza.yml)", args.candidate.resolve()),
    ]
    if args.lean:
        variants.append(
            Variant("lean", "candidate, ja_ginza without pipes", args.candidate.resolve(), True)
        )
    words = args.words if args.words and args.words.exists() else None
    load_start = os.getloadavg()[0]
    scores = {v.key: holdout_scores(v.key, v.model, out_dir) for v in variants[:2]}
    # Rounds in turn, reversed every other round, so that a drift of the machine's load
    # hits every variant alike.
    for round_number in range(args.rounds):
        order = variants if round_number % 2 == 0 else list(reversed(variants))
        for variant in order:
            out = out_dir / f"measure-{variant.key}-{round_number}.json"
            variant.runs.append(
                measure_in_child(variant.model, words, out, args.messages, variant.lean)
            )
    load_end = os.getloadavg()[0]
    training = json.loads(args.training_json.read_text()) if args.training_json else None

    def row(label: str, values: list[float | None], pattern: str = ".3f") -> list[str]:
        # A figure measured for the first variants only leaves the others a dash.
        values = values + [None] * (len(variants) - len(values))
        base = values[0]
        return [
            label,
            *(num(value, pattern) for value in values),
            *(times(ratio(value, base)) for value in values[1:]),
        ]

    def entity_f1(key: str) -> float | None:
        micro = (scores[key].entities.get("DIETClassifier") or {}).get("micro avg")
        return float(micro["f1-score"]) if micro else None

    tested = [v.key for v in variants[:2]]
    rows = [
        row("holdout intent accuracy (`rasa test nlu`)", [scores[k].accuracy for k in tested]),
        row(
            "holdout intent macro-F1 (`rasa test nlu`)",
            [scores[k].intents["macro avg"]["f1-score"] for k in tested],
        ),
        row("holdout entity F1, micro (DIET)", [entity_f1(k) for k in tested]),
    ]
    parts = [("holdout", "holdout, parsed in the measuring process")]
    if words is not None:
        count = len(variants[0].runs[0]["words"]["expected"])
        parts.append(("words", f"members' words ({count} intent items)"))
    for part, title in parts:
        found = [classification(v.runs[0][part]) for v in variants]
        rows += [
            row(f"{title}: intent accuracy", [f[0] for f in found]),
            row(f"{title}: intent macro-F1", [f[1] for f in found]),
            row(f"{title}: right and not asked again", [f[2] for f in found]),
        ]
    sizes = [model_sizes(v.model) for v in variants]
    rows += [
        row("parse p50 ms", [v.latency_ms(50) for v in variants], ".1f"),
        row("parse p95 ms", [v.latency_ms(95) for v in variants], ".1f"),
        row("throughput msg/s (sequential)", [v.throughput() for v in variants], ".1f"),
        row("peak RSS MiB (load + parse)", [v.peak_mib() for v in variants], ".0f"),
        row("model load s", [v.load_s() for v in variants], ".1f"),
        row("model file MB", [size[0] / 1e6 for size in sizes], ".1f"),
        row("NLU part of the model, uncompressed MB", [size[1] / 1e6 for size in sizes], ".1f"),
    ]
    if training:
        trained: list[float | None] = [args.baseline_training_s, training["seconds"]]
        rows.append(row("training wall s (`rasa train nlu`, cold cache)", trained, ".1f"))
    titles = [v.title for v in variants]
    header = ["metric", *titles, *(f"ratio {v.key}" for v in variants[1:])]
    print(*table(header, rows, "l" + "r" * (len(header) - 1)), sep="\n")
    print()
    for variant in variants[1:]:
        p95 = ratio(variant.latency_ms(95), variants[0].latency_ms(95))
        rate = ratio(variant.throughput(), variants[0].throughput())
        print(
            f"- {variant.key}: p95 ratio {num(p95, '.2f')} (goal ≤ 1.5), throughput ratio "
            f"{num(rate, '.2f')} (goal ≥ 0.8)"
        )
        for part, title in parts:
            gained, lost, p = mcnemar_p(variants[0].right(part), variant.right(part))
            same = sum(
                a == b
                for a, b in zip(
                    variants[1].runs[0][part]["predicted"],
                    variant.runs[0][part]["predicted"],
                    strict=True,
                )
            )
            print(
                f"  {title}: right only here {gained}, only in the baseline {lost} "
                f"(McNemar exact p {p:.2f}); same intent as the candidate: {same}"
            )
    if training:
        print(
            f"- candidate training: peak RSS {training['peak_rss_mib']:.0f} MiB, 1-min load "
            f"average {training['load_average']:.2f} when it ended; the baseline's time is "
            "from another run (--baseline-training-s)"
        )
    print(
        f"- {args.rounds} round(s) × {args.messages} parses per variant after {WARMUP} "
        "warm-up, one process per variant and round, the order reversed every other "
        f"round; 1-min load average {load_start:.2f} at start, {load_end:.2f} at end"
    )
    support = int(scores["baseline"].intents["macro avg"]["support"])
    print(
        f"- holdout: `{relative(HOLDOUT_PATH)}`, {support} examples; "
        f"training data `{relative(TRAINING_DATA)}`"
    )
    if words is not None:
        digest = hashlib.sha256(words.read_bytes()).hexdigest()[:12]
        print(f"- members' words: `{words}` (sha256 {digest}), items with `intent:` only")
    for name, size in package_bytes(CANDIDATE_PACKAGES).items():
        print(f"- installed {name}: {size / 1e6:.1f} MB")
    summary = {
        "scores": {k: {"intents": s.intents, "entities": s.entities} for k, s in scores.items()},
        "runs": {
            v.key: [{k: x for k, x in run.items() if k != "seconds"} for run in v.runs]
            for v in variants
        },
        "training": training,
    }
    text = json.dumps(summary, ensure_ascii=False, indent=1, default=str)
    (out_dir / "summary.json").write_text(text, encoding="utf-8")


def train_candidate(out_dir: Path) -> None:
    """Trains the candidate NLU-only with a cold cache, as `make bench` times trainings."""
    model, run = train(
        CANDIDATE_LABEL,
        project_dir=PROJECT_ROOT,
        config=CANDIDATE_CONFIG,
        data=TRAINING_DATA,
        out_dir=out_dir,
    )
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    found = {
        "model": str(model),
        "command": run.command,
        "seconds": run.seconds,
        "load_average": run.load_average,
        "peak_rss_mib": peak,
    }
    (out_dir / f"{CANDIDATE_LABEL}.training.json").write_text(
        json.dumps(found, indent=1), encoding="utf-8"
    )
    print(json.dumps(found, indent=1))


def main(argv: list[str] | None = None) -> None:
    """The command line (see the module's docstring)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    parser = argparse.ArgumentParser(prog="python -m bench.ginza_compare")
    commands = parser.add_subparsers(dest="command", required=True)
    training = commands.add_parser("train", help="train the candidate, timed")
    training.add_argument("--out", type=Path, default=Path("/tmp/ginza-models"))
    comparing = commands.add_parser("compare", help="score and time both models")
    comparing.add_argument("--baseline", type=Path, required=True)
    comparing.add_argument("--candidate", type=Path, required=True)
    comparing.add_argument("--words", type=Path, default=WORDS_PATH)
    comparing.add_argument("--training-json", type=Path)
    comparing.add_argument("--baseline-training-s", type=float, help="from another run")
    comparing.add_argument("--rounds", type=int, default=2)
    comparing.add_argument("--messages", type=int, default=MESSAGES)
    comparing.add_argument("--out", type=Path, default=Path("/tmp/ginza-compare"))
    comparing.add_argument(
        "--lean", action="store_true", help="also the candidate with ja_ginza without pipes"
    )
    measuring = commands.add_parser("measure", help="(child) one model's figures as JSON")
    measuring.add_argument("model", type=Path)
    measuring.add_argument("--json", type=Path, required=True)
    measuring.add_argument("--words", type=Path)
    measuring.add_argument("--messages", type=int, default=MESSAGES)
    measuring.add_argument("--lean", action="store_true", help="ja_ginza without pipes")
    args = parser.parse_args(argv)
    if args.command == "train":
        train_candidate(args.out)
    elif args.command == "compare":
        compare(args)
    else:
        found = measure(args.model, args.words, args.messages, args.lean)
        args.json.write_text(json.dumps(found), encoding="utf-8")


if __name__ == "__main__":
    main()
