"""NLU quality on the held-out split, from `rasa train nlu` and `rasa test nlu`.

Both pipelines (the product's config.yml and the one `rasa init` writes) are trained on
the product's data and tested on bench/data/nlu_holdout.yml, which is never trained on.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bench.report import DASH, num, table
from bench.servers import child_env, run_command
from bench.training import COMMAND_TIMEOUT_S, TrainingRun, rasa_command, rasa_file, relative, train
from bot.settings import PROJECT_ROOT

logger = logging.getLogger(__name__)

HOLDOUT_PATH = PROJECT_ROOT / "bench" / "data" / "nlu_holdout.yml"
TRAINING_DATA = PROJECT_ROOT / "data"
PIPELINE_TITLES = {
    "product": "product pipeline (config.yml)",
    "default": "default pipeline (`rasa init`)",
}
PRIMARY_EXTRACTOR = "DIETClassifier"
TOP_CONFUSIONS = 10
_SUMMARY_ROWS = frozenset({"accuracy", "micro avg", "macro avg", "weighted avg"})  # not labels


@dataclass(frozen=True)
class NluScores:
    """One pipeline's scores on the held-out split, as `rasa test nlu` reports them."""

    intents: dict[str, Any]  # intent_report.json
    entities: dict[str, dict[str, Any]]  # <extractor>_report.json by extractor
    confusions: list[tuple[str, str, int]]  # the most frequent: true, predicted, count

    @property
    def accuracy(self) -> float:
        """Intent accuracy."""
        return float(self.intents["accuracy"])


def nlu_files(path: Path) -> list[Path]:
    """The NLU data files of a file or directory, as Rasa's importer picks them."""
    import rasa.shared.data

    found = rasa.shared.data.get_data_files([str(path)], rasa.shared.data.is_nlu_file)
    return sorted(Path(name) for name in found)


def _examples(path: Path) -> list[tuple[str, str | None, int]]:
    """Text, intent and number of entities of every example in the NLU files at ``path``."""
    from rasa.shared.nlu.training_data.loading import load_data

    return [
        (message.get("text"), message.get("intent"), len(message.get("entities") or []))
        for file in nlu_files(path)
        for message in load_data(str(file)).training_examples
        if message.get("text")
    ]


def holdout_texts() -> list[str]:
    """The distinct plain texts of the held-out split, sorted."""
    return sorted({text for text, _, _ in _examples(HOLDOUT_PATH)})


def describe_dataset(holdout: Path = HOLDOUT_PATH, training: Path = TRAINING_DATA) -> list[str]:
    """The report's lines on the held-out split and how it relates to the training data."""
    held_out, trained = _examples(holdout), _examples(training)
    training_texts = {text.strip() for text, _, _ in trained}
    intents = {intent for _, intent, _ in held_out if intent}
    unseen = sorted(str(name) for name in intents - {intent for _, intent, _ in trained})
    files = ", ".join(f"`{relative(file)}`" for file in nlu_files(training)) or DASH
    lines = [
        f"- Held-out split: `{relative(holdout)}`, {len(held_out)} examples, {len(intents)} "
        f"intents, {sum(entities for _, _, entities in held_out)} entity annotations; never "
        "trained on.",
        f"- Training data (both pipelines, `rasa train nlu`): {files}, {len(trained)} examples.",
        "- Held-out texts found verbatim in the training data: "
        f"{sum(text.strip() in training_texts for text, _, _ in held_out)}.",
    ]
    if unseen:
        lines.append(f"- Held-out intents with no training example: {', '.join(unseen)}.")
    return lines


def read_results(out_dir: Path) -> NluScores:
    """Reads the reports `rasa test nlu` wrote into ``out_dir``."""

    def read(path: Path) -> Any:
        return json.loads(path.read_text(encoding="utf-8"))

    entities = {}
    for path in sorted(out_dir.glob("*_report.json")):
        extractor = path.name.removesuffix("_report.json")
        if extractor not in ("intent", "response_selection"):
            report = read(path)
            if "micro avg" in report:  # none when the held-out split has no entities
                entities[extractor] = report
    errors_path = out_dir / "intent_errors.json"
    errors = read(errors_path) if errors_path.exists() else []
    pairs = Counter(
        (str(error["intent"]), str(error["intent_prediction"]["name"])) for error in errors
    )
    # The most frequent first; ties in the labels' order, so that the order is stable.
    ranked = sorted(
        (item for item in pairs.items() if item[0][0] != item[0][1]),
        key=lambda item: (-item[1], item[0]),
    )
    confusions = [(true, predicted, count) for (true, predicted), count in ranked]
    return NluScores(read(out_dir / "intent_report.json"), entities, confusions[:TOP_CONFUSIONS])


def pipeline_components(config: Path) -> list[str]:
    """The components of a config's NLU pipeline; Rasa's default one if it is empty."""

    def pipeline(path: Path) -> list[Any]:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        return list((loaded or {}).get("pipeline") or [])

    components = pipeline(config) or pipeline(
        rasa_file("engine", "recipes", "config_files", "default_config.yml")
    )
    return [str(component.get("name")) for component in components if isinstance(component, dict)]


def evaluate(name: str, config: Path, run_dir: Path) -> tuple[NluScores, TrainingRun]:
    """Trains ``config`` NLU-only on the product's data and tests it on the holdout."""
    model, training = train(
        f"nlu-{name}",
        project_dir=PROJECT_ROOT,
        config=config,
        data=TRAINING_DATA,
        out_dir=run_dir / "models",
    )
    out_dir = run_dir / "nlu-results" / name
    out_dir.mkdir(parents=True, exist_ok=True)
    test = ["test", "nlu", "--model", str(model), "--nlu", str(HOLDOUT_PATH), "--out", str(out_dir)]
    run_command(
        f"evaluating {name}",
        rasa_command(*test, "--no-plot"),
        child_env(),
        COMMAND_TIMEOUT_S,
        cwd=PROJECT_ROOT,
    )
    scores = read_results(out_dir)
    logger.info("%s: intent accuracy %.3f", name, scores.accuracy)
    return scores, training


def section(
    dataset: Sequence[str], pipelines: Mapping[str, list[str]], found: Mapping[str, NluScores]
) -> list[str]:
    """The report's NLU section, below the lines of :func:`describe_dataset`."""
    lines = ["", "## 1. NLU quality on the held-out split", "", *dataset]
    for key, components in pipelines.items():
        lines.append(f"- {PIPELINE_TITLES[key]}: {' → '.join(components)}.")
    lines.append(
        "- Entity scores are Rasa's: token-based (BILOU tags merged), micro average over "
        "entity labels, `no_entity` left out; one figure per extractor. The product's "
        "DIET has a fixed `random_seed`; the default pipeline's has none, so its figures "
        "vary slightly from run to run."
    )
    keys = [key for key in PIPELINE_TITLES if key in found]
    if not keys:
        return [*lines, "", "No NLU figures (see Errors)."]
    scores = [found[key] for key in keys]
    titles = [PIPELINE_TITLES[key] for key in keys]
    lines += ["", *table(["metric", *titles], _score_rows(scores), "l" + "r" * len(keys))]
    lines += _per_entity(keys, scores)
    lines += ["", "### Top intent confusions (true → predicted)"]
    for title, score in zip(titles, scores, strict=True):
        lines += ["", f"{title}:", ""]
        if not score.confusions:
            lines.append("No misclassified messages.")
            continue
        rows = [[f"{true} → {wrong}", str(count)] for true, wrong, count in score.confusions]
        lines += table(["true → predicted", "count"], rows, "lr")
    return lines


def _score_rows(scores: list[NluScores]) -> list[list[str]]:
    def intents(row: str, column: str) -> list[str]:
        return [num(score.intents[row][column]) for score in scores]

    rows = [
        [
            "examples evaluated",
            *(str(int(score.intents["macro avg"]["support"])) for score in scores),
        ],
        ["intent accuracy", *(num(score.accuracy) for score in scores)],
        ["intent macro-F1", *intents("macro avg", "f1-score")],
        ["intent weighted-F1", *intents("weighted avg", "f1-score")],
    ]
    extractors = sorted({extractor for score in scores for extractor in score.entities})
    for extractor in extractors:
        micro = [score.entities.get(extractor, {}).get("micro avg") for score in scores]
        f1 = [num(average["f1-score"]) if average else DASH for average in micro]
        rows.append([f"entity F1, micro ({extractor})", *f1])
        both = [
            f"{num(average['precision'])} / {num(average['recall'])}" if average else DASH
            for average in micro
        ]
        rows.append([f"entity precision / recall, micro ({extractor})", *both])
    if not extractors:
        rows.append(["entity F1, micro", *(DASH for _ in scores)])
    return rows


def _per_entity(keys: list[str], scores: list[NluScores]) -> list[str]:
    """F1 per entity of each pipeline's primary extractor (DIET, else its first one)."""
    primaries = [
        PRIMARY_EXTRACTOR
        if PRIMARY_EXTRACTOR in score.entities
        else min(score.entities, default=None)
        for score in scores
    ]
    reports = [
        score.entities[primary] if primary else {}
        for score, primary in zip(scores, primaries, strict=True)
    ]
    entities = sorted({name for report in reports for name in report if name not in _SUMMARY_ROWS})
    if not entities:
        return []
    rows = []
    for name in entities:
        cells = [report.get(name) for report in reports]
        support = next((int(cell["support"]) for cell in cells if cell), 0)
        f1 = [num(cell["f1-score"]) if cell else DASH for cell in cells]
        rows.append([name, str(support), *f1])
    header = ["entity", "support (tokens)"] + [
        f"{key} F1 ({primary or DASH})" for key, primary in zip(keys, primaries, strict=True)
    ]
    return ["", "### Entity F1 per entity", "", *table(header, rows, "lr" + "r" * len(keys))]
