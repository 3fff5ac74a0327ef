"""The benchmarks' shared pure helpers on hand-made data (no Rasa, no servers)."""

from __future__ import annotations

import argparse
import json
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from bench import cli
from bench.__main__ import Results, parse_settings, render, targets
from bench.latency import RestPhase, Settings, SystemRun, plan_messages, seeded_sample
from bench.nlu import NluScores, read_results, section
from bench.report import Machine, header, num, ratio_line, table, times, timing_line
from bench.stats import Timings, percentile, ratio


def test_percentile_interpolates_linearly_like_numpy():
    values = [4.0, 1.0, 3.0, 2.0]
    assert percentile(values, 0) == 1.0
    assert percentile(values, 100) == 4.0
    assert percentile(values, 50) == pytest.approx(2.5)
    assert percentile(values, 95) == pytest.approx(3.85)  # rank 2.85 between 3 and 4
    assert percentile([7.0], 95) == 7.0


def test_percentile_rejects_an_empty_sample():
    with pytest.raises(ValueError):
        percentile([], 50)


def test_timings_report_milliseconds_rate_and_failures():
    timings = Timings([0.1, 0.2, 0.3, 0.4], wall_s=2.0)
    timings.fail("timeout")
    timings.fail("timeout")
    timings.fail("HTTP 500")
    assert (timings.ok, timings.errors) == (4, 3)
    assert timings.failures == {"timeout": 2, "HTTP 500": 1}
    assert timings.ms(50) == pytest.approx(250.0)
    assert timings.mean_ms == pytest.approx(250.0)
    assert timings.max_ms == pytest.approx(400.0)
    assert timings.per_second == pytest.approx(2.0)
    empty = Timings(failures={"HTTP 500": 3}, wall_s=1.0)
    assert empty.ms(50) is None and empty.mean_ms is None and empty.max_ms is None
    assert empty.per_second == 0.0 and Timings().per_second is None


def test_timing_a_block_adds_its_duration_unless_it_raises():
    timings = Timings()
    with timings.timing():
        time.sleep(0.01)
    with pytest.raises(RuntimeError), timings.timing():
        raise RuntimeError("failed")
    assert len(timings.seconds) == 1 and timings.seconds[0] >= 0.01


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


def test_message_plan_sizes():
    settings = Settings(sequential_messages=7, conversations=3, messages_per_conversation=4)
    plan = plan_messages(["x", "y"], settings)
    assert len(plan.sequential) == 7
    assert [len(conversation) for conversation in plan.concurrent] == [4, 4, 4]
    assert len(plan.warmup) == settings.warmup_messages
    assert plan == plan_messages(["y", "x", "x"], settings)  # the same pool, the same plan


def test_quick_sends_fewer_messages():
    assert parse_settings([]) == Settings()
    quick = parse_settings(["--quick"])
    assert (quick.sequential_messages, quick.concurrent_messages) == (40, 100)


def test_counts_below_the_minimum_are_refused():
    assert cli.at_least(1)("3") == 3
    with pytest.raises(argparse.ArgumentTypeError):
        cli.at_least(1)("0")
    with pytest.raises(ValueError):
        cli.at_least(0)("many")


# --- the report writer -------------------------------------------------------------------


def test_tables_numbers_and_ratios():
    assert table(["a", "b"], [["1", "2"]], "lr") == ["| a | b |", "| :--- | ---: |", "| 1 | 2 |"]
    assert num(None) == "—" and num(0.12345) == "0.123" and num(2.5, ".1f") == "2.5"
    assert times(1.234) == "1.23×" and times(None) == "—"


def test_timing_and_ratio_lines():
    baseline = {"hit": Timings([0.001, 0.002]), "miss": Timings([0.004])}
    large = {"hit": Timings([0.002, 0.004]), "miss": Timings([0.004])}
    line = timing_line("SQLite      large", large)
    assert line == "SQLite      large: hit p50   3.00 p95   3.90 ms  miss p50   4.00 p95   4.00 ms"
    ratios = ratio_line("SQLite      large/baseline", baseline, large)
    assert ratios == "SQLite      large/baseline: hit p50 2.00× p95 2.00×  miss p50 1.00× p95 1.00×"


def test_the_header_gives_the_date_the_machine_and_the_software():
    machine = Machine.collect()
    started = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)
    date, mode, hardware, software = header(started, machine, "- Mode: quick")
    assert date.startswith("- Date: 2026-01-01 12:00 UTC · took ")
    assert mode == "- Mode: quick"
    assert f"nproc {machine.nproc}" in hardware and "load average" in hardware
    assert f"Rasa {machine.rasa}" in software and "jsonschema" in software


# --- NLU scores and the targets ----------------------------------------------------------


def _row(precision: float, recall: float, f1: float, support: int) -> dict[str, float]:
    return {"precision": precision, "recall": recall, "f1-score": f1, "support": support}


def _write(folder: Path, name: str, content: object) -> None:
    (folder / name).write_text(json.dumps(content), encoding="utf-8")


def test_the_scores_are_rasa_s_reports_with_the_top_confusions(tmp_path):
    intents = {
        "greet": {**_row(1.0, 0.5, 0.667, 2), "confused_with": {"bye": 1}},
        "bye": _row(0.5, 1.0, 0.667, 1),
        "accuracy": 0.667,
        "macro avg": _row(0.75, 0.75, 0.667, 3),
        "weighted avg": _row(0.833, 0.667, 0.667, 3),
        "micro avg": _row(0.667, 0.667, 0.667, 3),
    }
    entities = {
        "city": _row(1.0, 0.5, 0.667, 4),
        "name": _row(0.5, 0.5, 0.5, 2),
        "micro avg": _row(0.75, 0.5, 0.6, 6),
        "accuracy": 0.9,
    }
    errors = [
        {"intent": true, "intent_prediction": {"name": predicted}}
        for true, predicted in [("a", "b"), ("a", "b"), ("c", "a"), ("b", "b"), ("a", "c")]
    ]
    _write(tmp_path, "intent_report.json", intents)
    _write(tmp_path, "intent_errors.json", errors)
    _write(tmp_path, "DIETClassifier_report.json", entities)
    _write(tmp_path, "RegexEntityExtractor_report.json", {"accuracy": 1.0})  # no entities
    _write(tmp_path, "response_selection_report.json", {"micro avg": _row(1, 1, 1, 1)})
    scores = read_results(tmp_path)
    assert scores.accuracy == pytest.approx(0.667)
    assert scores.intents == intents and scores.entities == {"DIETClassifier": entities}
    # Most frequent first, then by the labels; a correct prediction is no confusion.
    assert scores.confusions == [("a", "b", 2), ("a", "c", 1), ("c", "a", 1)]
    product = NluScores(intents, {"DIETClassifier": entities}, scores.confusions)
    default = NluScores(intents, {}, [])
    text = "\n".join(
        section(["- Held-out split: ..."], {}, {"product": product, "default": default})
    )
    assert "| examples evaluated | 3 | 3 |" in text
    assert "| entity F1, micro (DIETClassifier) | 0.600 | — |" in text
    assert "| entity precision / recall, micro (DIETClassifier) | 0.750 / 0.500 | — |" in text
    assert "| city | 4 | 0.667 | — |" in text
    assert "| a → b | 2 |" in text and "No misclassified messages." in text


def _phase(p95_ms: float, per_second: float) -> RestPhase:
    seconds = [p95_ms / 1000] * 20  # 20 answers as fast as one another
    return RestPhase(seconds, wall_s=len(seconds) / per_second, planned=20)


def _scores(accuracy: float) -> NluScores:
    summary = _row(accuracy, accuracy, accuracy, 10)
    return NluScores({"accuracy": accuracy, "macro avg": summary, "weighted avg": summary}, {}, [])


def _results(product_accuracy: float | None) -> Results:
    results = Results(Settings(), Machine.collect(), datetime.now(timezone.utc))
    if product_accuracy is not None:
        results.nlu["product"] = _scores(product_accuracy)
        results.nlu["default"] = _scores(0.80)
        results.systems["product"] = SystemRun(
            "product", sequential=_phase(150.0, 5.0), concurrent=_phase(10.0, 8.0)
        )
        results.systems["rasa-init"] = SystemRun(
            "rasa init", sequential=_phase(100.0, 9.0), concurrent=_phase(10.0, 10.0)
        )
    return results


def test_targets_are_ratios_against_the_baseline():
    accuracy, throughput, p95 = targets(_results(0.96))
    assert accuracy.met is True and accuracy.value == pytest.approx(0.96)
    assert "+0.160" in accuracy.detail
    assert throughput.value == pytest.approx(0.8) and throughput.met is True
    assert "20 concurrent" in throughput.name and "8.00 / 10.00 msg/s" in throughput.detail
    assert p95.value == pytest.approx(1.5) and p95.met is True
    assert all(target.met is None for target in targets(_results(None)))


def test_the_report_has_every_section_and_the_targets():
    results = _results(0.96)
    results.errors.append("rasa init servers: it failed\nthe log's tail")
    text = render(results, targets(results))
    for title in ("## 1. NLU", "## 2. Latency", "## 3. Training", "## 4. Peak memory", "## 5."):
        assert title in text
    assert "| product | 1 conversation, sequential | 20/20 | 0 | 0 | 150.0 | 150.0 |" in text
    assert "| intent accuracy | 0.960 | 0.800 |" in text and "| examples evaluated | 10 |" in text
    assert "| p95 latency of 1 conversation, product / rasa init | 1.500 | ≤ 1.5 | met |" in text
    assert "- rasa init servers: it failed\n\n```text\nthe log's tail\n```" in text
