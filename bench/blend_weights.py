"""The blend's DIET weight, chosen on the members'-words dev set (issue 21).

``python -m bench.blend_weights [--model M]`` parses the dev set's intent items once with
the trained NLU, keeping for each text the two inputs of bot.nlu.linear_blend (DIET's
ranking and the linear model's probabilities), and prints for each weight of a grid what
the blend would have decided: the top intent right (before the fallback), asked again by
the FallbackClassifier's thresholds, or a wrong intent answered. No retraining: both
models are the trained ones, only their average changes.

The rule that picks a weight was fixed before any figure was read: the most items right
and not asked again, then the fewest wrong, then the weight closest to the current one.
``--holdout`` then parses bench/data/nlu_holdout.yml and prints its accuracy before the
fallback for the current and the chosen weight only: the holdout is read after the
choice, never searched.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from bench import cli
from bench.members_words import _default_model, _holdout_examples, load_items
from bench.report import num, table
from bot.settings import PROJECT_ROOT

GRID = [round(0.2 + 0.05 * step, 2) for step in range(13)]  # 0.2 … 0.8
# Topics added to the holdout after the issue was filed with its 360 examples.
NEWER_TOPICS = frozenset({"ask_retention", "ask_foreign_transfer", "ask_organization"})


@dataclass(frozen=True)
class Parts:
    """One text's inputs to the blend, and what the rest of the pipeline did to it."""

    text: str
    expected: str
    diet: dict[str, float]
    linear: dict[str, float]
    unknown_words: bool


@dataclass(frozen=True)
class Decision:
    """What the blend at one weight decides for one text."""

    top: str | None
    asked_again: bool


def _component(name: str) -> dict[str, Any]:
    """The settings of config.yml's pipeline component whose name ends with ``name``."""
    config = yaml.safe_load((PROJECT_ROOT / "config.yml").read_text(encoding="utf-8"))
    for component in config["pipeline"]:
        if component["name"].endswith(name):
            return dict(component)
    raise SystemExit(f"config.yml has no {name}")


def _fallback_settings() -> tuple[float, float]:
    fallback = _component("FallbackClassifier")
    return float(fallback["threshold"]), float(fallback["ambiguity_threshold"])


def current_weight() -> float:
    """``diet_weight`` of the blend in config.yml."""
    return float(_component("LinearIntentBlend").get("diet_weight", 0.5))


def decide(parts: Parts, weight: float, threshold: float, ambiguity: float) -> Decision:
    """The blend's top intent at ``weight`` and whether the fallback would ask again.

    As in the pipeline: the ranking is cut to Rasa's ten labels, the unknown-words guard
    zeroes the confidence, and the FallbackClassifier asks again under its threshold or
    when the two best are closer than its ambiguity threshold.
    """
    from rasa.nlu.classifiers import LABEL_RANKING_LENGTH

    from bot.nlu.linear_blend import blend

    ranking = blend(parts.diet, parts.linear, weight)[:LABEL_RANKING_LENGTH]
    if not ranking:
        return Decision(None, True)
    top, confidence = ranking[0]
    second = ranking[1][1] if len(ranking) > 1 else 0.0
    if parts.unknown_words:
        confidence = 0.0
    asked = confidence < threshold or confidence - second < ambiguity
    return Decision(top, asked)


def collect(model: Path, examples: Sequence[tuple[str, str]]) -> list[Parts]:
    """Parses ``examples`` (text, expected intent) keeping the blend's two inputs."""
    from rasa.core.agent import Agent
    from rasa.shared.nlu.constants import INTENT_RANKING_KEY, TEXT
    from rasa.utils.log_utils import configure_structlog

    from bot.nlu import linear_blend
    from bot.nlu.unknown_words import UNKNOWN_WORDS_KEY

    seen: dict[str, tuple[dict[str, float], dict[str, float]]] = {}
    original = linear_blend.LinearIntentBlend.process

    def recording(self: Any, messages: list[Any]) -> list[Any]:
        for message in messages:
            ranking = message.get(INTENT_RANKING_KEY)
            if self.model is None or not ranking or not message.get(TEXT):
                continue
            probabilities = self.model.predict_proba([linear_blend._document(message)])[0]
            linear = {
                str(label): float(p)
                for label, p in zip(self.model.classes_, probabilities, strict=True)
            }
            diet = {entry["name"]: float(entry["confidence"]) for entry in ranking}
            seen[message.get(TEXT)] = (diet, linear)
        return original(self, messages)

    configure_structlog(logging.WARNING)
    linear_blend.LinearIntentBlend.process = recording  # type: ignore[method-assign]
    try:
        agent = Agent.load(str(model))

        async def parse() -> list[dict[str, Any]]:
            return [await agent.parse_message(text) for text, _ in examples]

        parsed = asyncio.run(parse())
    finally:
        linear_blend.LinearIntentBlend.process = original  # type: ignore[method-assign]
    collected = []
    for (text, expected), result in zip(examples, parsed, strict=True):
        diet, linear = seen.get(text, ({}, {}))
        collected.append(Parts(text, expected, diet, linear, bool(result.get(UNKNOWN_WORDS_KEY))))
    return collected


@dataclass(frozen=True)
class Score:
    """The dev set's outcome at one weight."""

    weight: float
    right_before_fallback: int
    right: int
    asked_again: int
    wrong: int


def score(parts: Sequence[Parts], weight: float, threshold: float, ambiguity: float) -> Score:
    """Counts the outcomes of ``parts`` at ``weight``."""
    decisions = [(p, decide(p, weight, threshold, ambiguity)) for p in parts]
    return Score(
        weight,
        sum(d.top == p.expected for p, d in decisions),
        sum(d.top == p.expected and not d.asked_again for p, d in decisions),
        sum(d.asked_again for _, d in decisions),
        sum(d.top != p.expected and not d.asked_again for p, d in decisions),
    )


def choose(scores: Sequence[Score], current: float) -> Score:
    """Most right, then fewest wrong, then closest to the current weight."""
    return min(scores, key=lambda s: (-s.right, s.wrong, abs(s.weight - current)))


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point: prints the figures as Markdown."""
    parser = cli.parser("python -m bench.blend_weights", __doc__)
    parser.add_argument("--model", type=Path, help="the model (default: the current one)")
    parser.add_argument("--holdout", action="store_true", help="then read the holdout")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    model = args.model or _default_model()
    threshold, ambiguity = _fallback_settings()
    current = current_weight()
    items = [item for item in load_items() if item.expected.intent]
    dev = collect(model, [(item.text, str(item.expected.intent)) for item in items])
    scores = [score(dev, weight, threshold, ambiguity) for weight in GRID]
    chosen = choose(scores, current)
    rows = [
        [
            num(s.weight)
            + (" (current)" if s.weight == current else "")
            + (" **chosen**" if s is chosen else ""),
            str(s.right_before_fallback),
            str(s.right),
            str(s.asked_again),
            str(s.wrong),
        ]
        for s in scores
    ]
    lines = [
        f"## The blend's DIET weight on the dev set's {len(dev)} intent items",
        "",
        f"- model: `{model}`; fallback threshold {threshold}, ambiguity {ambiguity}.",
        "",
        *table(
            ["DIET weight", "right before fallback", "right", "asked again", "wrong"],
            rows,
            "lrrrr",
        ),
    ]
    figures: dict[str, Any] = {"model": str(model), "dev": [asdict(s) for s in scores]}
    if args.holdout:
        held = collect(model, _holdout_examples())
        original = [p for p in held if p.expected not in NEWER_TOPICS]
        compared = sorted({current, chosen.weight})
        rows = []
        figures["holdout"] = []
        for name, chosen_parts in (("the issue's", original), ("all", held)):
            for weight in compared:
                s = score(chosen_parts, weight, threshold, ambiguity)
                figures["holdout"].append({"examples": name, **asdict(s)})
                row = [f"{name} {len(chosen_parts)}", num(s.weight), str(s.right_before_fallback)]
                rows.append([*row, str(s.right), str(s.asked_again), str(s.wrong)])
        lines += ["", "Holdout, read after the choice:", ""]
        lines += table(
            ["examples", "DIET weight", "right before fallback", "right", "asked again", "wrong"],
            rows,
            "llrrrr",
        )
    sys.stdout.write("\n".join(lines) + "\n")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
