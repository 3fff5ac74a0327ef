"""NLU quality on the held-out split, from `rasa train nlu` and `rasa test nlu`."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bench import rasa_cli
from bench.results import EntityScores, LabelScore, NluScores, TrainingRun
from bench.servers import read_yaml_mapping
from bench.settings import HOLDOUT_PATH, PRODUCT_DATA, ROOT, Settings
from bench.stats import confusion_pairs

logger = logging.getLogger(__name__)

TOP_CONFUSIONS = 10
_SUMMARY_KEYS = frozenset({"accuracy", "micro avg", "macro avg", "weighted avg"})
_NON_ENTITY_REPORTS = frozenset({"intent_report.json", "response_selection_report.json"})


def label_score(entry: Mapping[str, Any]) -> LabelScore:
    """One row of a scikit-learn classification report as written by Rasa."""
    return LabelScore(
        precision=float(entry["precision"]),
        recall=float(entry["recall"]),
        f1=float(entry["f1-score"]),
        support=int(entry["support"]),
    )


def per_label(report: Mapping[str, Any]) -> dict[str, LabelScore]:
    """The per-label rows of a report (summary rows left out)."""
    return {
        label: label_score(entry)
        for label, entry in report.items()
        if label not in _SUMMARY_KEYS and isinstance(entry, Mapping)
    }


def intent_scores(
    pipeline: str,
    report: Mapping[str, Any],
    errors: Sequence[Mapping[str, Any]],
    entities: list[EntityScores],
) -> NluScores:
    """NLU scores from Rasa's intent_report.json and intent_errors.json contents.

    Args:
        pipeline: The pipeline's name in the report.
        report: The parsed intent_report.json (labels are the held-out intents).
        errors: The parsed intent_errors.json (one entry per misclassified message).
        entities: The pipeline's entity scores.

    Returns:
        Accuracy, macro- and weighted-F1, per-intent scores and top confusions.
    """
    pairs = [(str(error["intent"]), str(error["intent_prediction"]["name"])) for error in errors]
    return NluScores(
        pipeline=pipeline,
        examples=int(report["macro avg"]["support"]),
        accuracy=float(report["accuracy"]),
        macro_f1=float(report["macro avg"]["f1-score"]),
        weighted_f1=float(report["weighted avg"]["f1-score"]),
        per_intent=per_label(report),
        entities=entities,
        confusions=confusion_pairs(pairs, TOP_CONFUSIONS),
    )


def entity_scores(extractor: str, report: Mapping[str, Any]) -> EntityScores | None:
    """Token-based entity scores from one ``<extractor>_report.json``.

    Rasa labels every token with its entity (BILOU tags merged), leaves out
    ``no_entity`` and reports the micro average over the entity labels.

    Args:
        extractor: The extractor's name.
        report: The parsed report; empty when the held-out split has no entities.

    Returns:
        The scores, or None if the report holds none.
    """
    if "micro avg" not in report:
        return None
    return EntityScores(extractor, label_score(report["micro avg"]), per_label(report))


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def read_results(pipeline: str, out_dir: Path) -> NluScores:
    """Parses the files `rasa test nlu` wrote into ``out_dir``."""
    entities = []
    for path in sorted(out_dir.glob("*_report.json")):
        if path.name in _NON_ENTITY_REPORTS:
            continue
        scores = entity_scores(path.name.removesuffix("_report.json"), _read_json(path))
        if scores is not None:
            entities.append(scores)
    errors_path = out_dir / "intent_errors.json"
    errors = _read_json(errors_path) if errors_path.exists() else []
    return intent_scores(pipeline, _read_json(out_dir / "intent_report.json"), errors, entities)


def pipeline_components(config: Path) -> list[str]:
    """The component names of a config's NLU pipeline, Rasa's default if it is empty."""
    pipeline = read_yaml_mapping(config).get("pipeline")
    if not pipeline:
        default = rasa_cli.default_config_file()
        pipeline = read_yaml_mapping(default).get("pipeline") or []
    return [str(component.get("name")) for component in pipeline if isinstance(component, dict)]


def evaluate_pipeline(
    name: str, config: Path, run_dir: Path, settings: Settings
) -> tuple[NluScores, TrainingRun]:
    """Trains ``config`` NLU-only on the product's data and evaluates it on the holdout.

    Args:
        name: The pipeline's name (also names the model and logs).
        config: The model configuration.
        run_dir: The run's temporary directory (the model goes there).
        settings: Timeouts.

    Returns:
        The held-out scores and the timed training.
    """
    model, training = rasa_cli.train(
        f"nlu-{name}",
        project_dir=ROOT,
        config=config,
        data=PRODUCT_DATA,
        domain=None,
        out_dir=run_dir / "models",
        nlu_only=True,
        timeout_s=settings.command_timeout_s,
    )
    out_dir = rasa_cli.evaluate_nlu(
        name,
        project_dir=ROOT,
        model=model,
        nlu_data=HOLDOUT_PATH,
        out_dir=run_dir / "nlu-results" / name,
        timeout_s=settings.command_timeout_s,
    )
    scores = read_results(name, out_dir)
    logger.info("%s: intent accuracy %.3f, macro-F1 %.3f", name, scores.accuracy, scores.macro_f1)
    return scores, training
