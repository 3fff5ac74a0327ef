"""The benchmark's pure helpers on hand-made data (no Rasa, no servers, no timings)."""

from __future__ import annotations

import pytest

from bench.messages import plan_messages
from bench.nlu import entity_scores, intent_scores
from bench.results import LabelScore, LatencySummary, NluScores, SystemRun
from bench.settings import Settings
from bench.stats import (
    chunk,
    confusion_pairs,
    percentile,
    ratio,
    seeded_sample,
    summarize_latencies,
)
from bench.targets import evaluate


def test_percentile_interpolates_linearly_like_numpy():
    values = [4.0, 1.0, 3.0, 2.0]
    assert percentile(values, 0) == 1.0
    assert percentile(values, 100) == 4.0
    assert percentile(values, 50) == pytest.approx(2.5)
    assert percentile(values, 95) == pytest.approx(3.85)  # rank 2.85 between 3 and 4
    assert percentile([7.0], 95) == 7.0


def test_percentile_rejects_empty_sample_and_bad_rank():
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_summarize_latencies_reports_milliseconds_and_throughput():
    summary = summarize_latencies(
        [0.1, 0.2, 0.3, 0.4],
        planned=6,
        sent=5,
        empty_replies=1,
        wall_s=2.0,
        error_kinds={"timeout": 1},
    )
    assert summary.ok == 4
    assert summary.errors == 1
    assert summary.p50_ms == pytest.approx(250.0)
    assert summary.mean_ms == pytest.approx(250.0)
    assert summary.max_ms == pytest.approx(400.0)
    assert summary.throughput == pytest.approx(2.0)


def test_summarize_latencies_without_successes():
    summary = summarize_latencies(
        [], planned=3, sent=3, empty_replies=0, wall_s=1.0, error_kinds={"HTTP 500": 3}
    )
    assert summary.p50_ms is None and summary.p95_ms is None
    assert summary.throughput == 0.0
    assert summary.errors == 3


def test_confusion_pairs_counts_sorts_and_ignores_correct_pairs():
    pairs = [("a", "b"), ("a", "b"), ("c", "a"), ("b", "b"), ("a", "c"), ("c", "a")]
    ranked = confusion_pairs(pairs, top=2)
    assert [(p.true, p.predicted, p.count) for p in ranked] == [("a", "b", 2), ("c", "a", 2)]


def test_ratio_handles_missing_and_zero():
    assert ratio(3.0, 2.0) == pytest.approx(1.5)
    assert ratio(None, 2.0) is None
    assert ratio(1.0, 0.0) is None


def test_seeded_sample_is_deterministic_and_uses_every_item_before_repeating():
    pool = ["a", "b", "c"]
    sample = seeded_sample(pool, 7, seed=1)
    assert sample == seeded_sample(pool, 7, seed=1)
    assert sorted(sample[:3]) == pool and sorted(sample[3:6]) == pool
    with pytest.raises(ValueError):
        seeded_sample([], 1, seed=1)


def test_chunk_and_message_plan_sizes():
    assert chunk(["a", "b", "c"], 2) == [["a", "b"], ["c"]]
    settings = Settings(sequential_messages=7, conversations=3, messages_per_conversation=4)
    plan = plan_messages(["x", "y"], "test", settings)
    assert len(plan.sequential) == 7
    assert [len(conversation) for conversation in plan.concurrent] == [4, 4, 4]
    assert len(plan.warmup) == settings.warmup_messages


def _row(precision: float, recall: float, f1: float, support: int) -> dict[str, float]:
    return {"precision": precision, "recall": recall, "f1-score": f1, "support": support}


def test_intent_scores_read_rasa_report_and_errors():
    report = {
        "greet": {**_row(1.0, 0.5, 0.667, 2), "confused_with": {"bye": 1}},
        "bye": _row(0.5, 1.0, 0.667, 1),
        "accuracy": 0.667,
        "macro avg": _row(0.75, 0.75, 0.667, 3),
        "weighted avg": _row(0.833, 0.667, 0.667, 3),
        "micro avg": _row(0.667, 0.667, 0.667, 3),
    }
    errors = [{"text": "hi", "intent": "greet", "intent_prediction": {"name": "bye"}}]
    scores = intent_scores("product", report, errors, [])
    assert scores.examples == 3
    assert scores.accuracy == pytest.approx(0.667)
    assert scores.macro_f1 == pytest.approx(0.667)
    assert set(scores.per_intent) == {"greet", "bye"}
    assert [(c.true, c.predicted, c.count) for c in scores.confusions] == [("greet", "bye", 1)]


def test_entity_scores_use_rasa_micro_average():
    report = {
        "city": _row(1.0, 0.5, 0.667, 4),
        "name": _row(0.5, 0.5, 0.5, 2),
        "micro avg": _row(0.75, 0.5, 0.6, 6),
        "macro avg": _row(0.75, 0.5, 0.583, 6),
        "weighted avg": _row(0.833, 0.5, 0.611, 6),
        "accuracy": 0.9,
    }
    scores = entity_scores("DIETClassifier", report)
    assert scores is not None
    assert scores.micro == LabelScore(0.75, 0.5, 0.6, 6)
    assert set(scores.per_entity) == {"city", "name"}
    assert entity_scores("DIETClassifier", {}) is None


def _summary(p95_ms: float, throughput: float) -> LatencySummary:
    return LatencySummary(
        planned=10,
        sent=10,
        ok=10,
        errors=0,
        empty_replies=0,
        p50_ms=p95_ms / 2,
        p95_ms=p95_ms,
        mean_ms=p95_ms / 2,
        max_ms=p95_ms,
        wall_s=1.0,
        throughput=throughput,
    )


def _nlu(accuracy: float) -> NluScores:
    return NluScores("p", 10, accuracy, accuracy, accuracy, {}, [], [])


def test_targets_are_ratios_against_the_baseline():
    product = SystemRun("product", sequential=_summary(150.0, 5.0), concurrent=_summary(0, 8.0))
    baseline = SystemRun("rasa init", sequential=_summary(100.0, 9.0), concurrent=_summary(0, 10.0))
    accuracy, throughput, p95 = evaluate(_nlu(0.96), _nlu(0.80), product, baseline, 20)
    assert accuracy.met is True and accuracy.value == pytest.approx(0.96)
    assert "+0.160" in accuracy.detail
    assert throughput.value == pytest.approx(0.8) and throughput.met is True
    assert "20 concurrent" in throughput.name
    assert p95.value == pytest.approx(1.5) and p95.met is True
    missing = evaluate(None, None, None, None, 20)
    assert all(target.met is None for target in missing)
