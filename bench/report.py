"""Rendering the figures of one run as a Markdown report."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from bench.results import BenchResults, EntityScores, LatencySummary, NluScores, SystemRun
from bench.settings import project_relative
from bench.targets import Target

PIPELINE_TITLES = {
    "product": "product pipeline (config.yml)",
    "default": "default pipeline (`rasa init`)",
}
PRIMARY_EXTRACTOR = "DIETClassifier"
_DASH = "–"


def table(header: Sequence[str], rows: Iterable[Sequence[str]], align: str = "") -> list[str]:
    """A Markdown table; ``align`` holds one of 'l'/'r' per column (default: left)."""
    marks = [":---" if (align[i : i + 1] or "l") == "l" else "---:" for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(marks) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def num(value: float | None, pattern: str = ".3f") -> str:
    """A number formatted with ``pattern``, or a dash when missing."""
    return _DASH if value is None else format(value, pattern)


def _primary(scores: NluScores) -> EntityScores | None:
    by_name = {entity.extractor: entity for entity in scores.entities}
    return by_name.get(PRIMARY_EXTRACTOR) or (scores.entities[0] if scores.entities else None)


def _header(results: BenchResults) -> list[str]:
    settings, machine = results.settings, results.machine
    duration = (
        f" · took {(results.finished - results.started).total_seconds() / 60:.1f} min"
        if results.finished
        else ""
    )
    return [
        "# Privacy assistant benchmark",
        "",
        f"- Date: {results.started:%Y-%m-%d %H:%M %Z}{duration}",
        f"- Mode: {settings.mode} ({settings.sequential_messages} sequential messages; "
        f"{settings.conversations} concurrent conversations × "
        f"{settings.messages_per_conversation} messages)",
        f"- Machine: nproc {machine.nproc} · {machine.cpu_model} · "
        f"{machine.memory_gib:.1f} GiB RAM · 1-min load average {machine.load_average:.2f} "
        f"at start, {num(results.load_average_end, '.2f')} at end "
        "(other work on the machine makes the figures noisy)",
        f"- Software: Python {machine.python} · Rasa {machine.rasa} · "
        f"Rasa SDK {machine.rasa_sdk} · TensorFlow {machine.tensorflow} · "
        f"jsonschema {machine.jsonschema} · "
        f"git {machine.git_revision}",
    ]


def _nlu_section(results: BenchResults) -> list[str]:
    lines = ["", "## 1. NLU quality on the held-out split", ""]
    if not results.settings.run_nlu:
        return [*lines, "Skipped (`--skip-nlu`)."]
    data = results.dataset
    if data:
        lines += [
            f"- Held-out split: `{project_relative(data.holdout_path)}`, {data.holdout_examples} "
            f"examples, {data.holdout_intents} intents, {data.holdout_entity_annotations} "
            "entity annotations; never trained on.",
            f"- Training data (both pipelines, `rasa train nlu`): "
            f"{', '.join(f'`{project_relative(f)}`' for f in data.training_files) or _DASH}, "
            f"{data.training_examples} examples.",
            f"- Held-out texts found verbatim in the training data: {data.leaked_texts}.",
        ]
        if data.unseen_intents:
            lines.append(
                f"- Held-out intents with no training example: {', '.join(data.unseen_intents)}."
            )
    for key, components in results.pipelines.items():
        lines.append(f"- {PIPELINE_TITLES.get(key, key)}: {' → '.join(components)}.")
    lines.append(
        "- Entity scores are Rasa's: token-based (BILOU tags merged), micro average over "
        "entity labels, `no_entity` left out; one figure per extractor. The product's "
        "DIET has a fixed `random_seed`; the default pipeline's has none, so its figures "
        "vary slightly from run to run."
    )
    keys = [key for key in PIPELINE_TITLES if key in results.nlu]
    if not keys:
        return [*lines, "", "No NLU figures (see Errors)."]
    scores = [results.nlu[key] for key in keys]
    rows = [
        ["examples evaluated", *(str(s.examples) for s in scores)],
        ["intent accuracy", *(num(s.accuracy) for s in scores)],
        ["intent macro-F1", *(num(s.macro_f1) for s in scores)],
        ["intent weighted-F1", *(num(s.weighted_f1) for s in scores)],
    ]
    extractors = sorted({entity.extractor for s in scores for entity in s.entities})
    for extractor in extractors:
        found = [{e.extractor: e for e in s.entities}.get(extractor) for s in scores]
        rows.append(
            [f"entity F1, micro ({extractor})", *(num(e.micro.f1 if e else None) for e in found)]
        )
        rows.append(
            [
                f"entity precision / recall, micro ({extractor})",
                *(
                    f"{num(e.micro.precision)} / {num(e.micro.recall)}" if e else _DASH
                    for e in found
                ),
            ]
        )
    if not extractors:
        rows.append(["entity F1, micro", *(_DASH for _ in scores)])
    lines += [
        "",
        *table(["metric", *(PIPELINE_TITLES[k] for k in keys)], rows, "l" + "r" * len(keys)),
    ]
    lines += _per_entity(keys, scores)
    lines += _confusions(keys, scores)
    return lines


def _per_entity(keys: list[str], scores: list[NluScores]) -> list[str]:
    primaries = [_primary(s) for s in scores]
    entities = sorted({name for p in primaries if p for name in p.per_entity})
    if not entities:
        return []
    rows = []
    for name in entities:
        cells = [p.per_entity.get(name) if p else None for p in primaries]
        support = next((c.support for c in cells if c), 0)
        rows.append([name, str(support), *(num(c.f1 if c else None) for c in cells)])
    header = [
        "entity",
        "support (tokens)",
        *(f"{k} F1 ({p.extractor if p else _DASH})" for k, p in zip(keys, primaries, strict=True)),
    ]
    return ["", "### Entity F1 per entity", "", *table(header, rows, "lr" + "r" * len(keys))]


def _confusions(keys: list[str], scores: list[NluScores]) -> list[str]:
    lines = ["", "### Top intent confusions (true → predicted)"]
    for key, score in zip(keys, scores, strict=True):
        lines += ["", f"{PIPELINE_TITLES[key]}:", ""]
        if not score.confusions:
            lines.append("No misclassified messages.")
            continue
        rows = [[f"{c.true} → {c.predicted}", str(c.count)] for c in score.confusions]
        lines += table(["true → predicted", "count"], rows, "lr")
    return lines


def _latency_rows(title: str, run: SystemRun, concurrency: str) -> list[list[str]]:
    phases: list[tuple[str, LatencySummary | None]] = [
        ("1 conversation, sequential", run.sequential),
        (concurrency, run.concurrent),
    ]
    rows = []
    for load, summary in phases:
        if summary is None:
            rows.append([title, load, *([_DASH] * 7)])
            continue
        rows.append(
            [
                title,
                load,
                f"{summary.ok}/{summary.planned}",
                str(summary.errors),
                str(summary.empty_replies),
                num(summary.p50_ms, ".1f"),
                num(summary.p95_ms, ".1f"),
                num(summary.mean_ms, ".1f"),
                num(summary.throughput, ".2f"),
            ]
        )
    return rows


def _latency_section(results: BenchResults) -> list[str]:
    settings = results.settings
    lines = ["", "## 2. Latency through the REST channel", ""]
    if not settings.run_latency:
        return [*lines, "Skipped (`--skip-latency`)."]
    concurrency = (
        f"{settings.conversations} concurrent conversations × {settings.messages_per_conversation}"
    )
    lines += [
        "- `POST /webhooks/rest/webhook` on 127.0.0.1, one server at a time, after "
        f"{settings.warmup_messages} warm-up messages; request timeout "
        f"{settings.request_timeout_s:.0f} s, phase deadline {settings.phase_deadline_s:.0f} s.",
        "- p50/p95/mean are per message (successful requests); msg/s is answered messages "
        "per second of the phase's wall time. 'empty' counts replies with no bot message.",
    ]
    rows: list[list[str]] = []
    for run in results.systems.values():
        rows += _latency_rows(run.system, run, concurrency)
    if rows:
        header = ["assistant", "load", "answered", "errors", "empty", "p50 ms", "p95 ms"]
        lines += ["", *table([*header, "mean ms", "msg/s"], rows, "llrrrrrrr"), ""]
    for run in results.systems.values():
        startup = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in run.startup_s.items())
        details = [*run.notes, f"ready after: {startup}" if startup else ""]
        for summary in (run.sequential, run.concurrent):
            if summary and summary.error_kinds:
                details.append(
                    "errors: " + ", ".join(f"{k} × {v}" for k, v in summary.error_kinds.items())
                )
        lines.append(f"- {run.system}: " + "; ".join(d for d in details if d) + ".")
    return lines


def _training_section(results: BenchResults) -> list[str]:
    lines = ["", "## 3. Training time", ""]
    if not results.trainings:
        return [*lines, "No training ran."]
    rows = [
        [
            t.label,
            f"`{t.directory}`",
            f"`{t.command}`",
            num(t.seconds, ".1f"),
            num(t.load_average, ".2f"),
        ]
        for t in results.trainings
    ]
    lines += table(["model", "run in", "command", "seconds", "load after"], rows, "lllrr")
    lines.append(
        "\nWall time of each command with a cold training cache (`RASA_CACHE_DIRECTORY` "
        "fresh), including Rasa's start-up; configs as written (no fewer epochs). "
        "'load after' is the 1-minute load average when the command ended (2 cores)."
    )
    return lines


def _memory_section(results: BenchResults) -> list[str]:
    lines = ["", "## 4. Peak memory of the servers", ""]
    peaks = [peak for run in results.systems.values() for peak in run.memory]
    if not peaks:
        return [*lines, "No server ran."]
    rows = [[p.process, num(p.peak_mib, ".0f"), str(p.processes)] for p in peaks]
    lines += table(["process", "VmHWM MiB", "processes"], rows, "lrr")
    lines.append(
        "\nVmHWM from /proc/<pid>/status, summed over the processes of the server's "
        "process group (children included), sampled during the run and before stopping."
    )
    return lines


def _targets_section(results: BenchResults, targets: list[Target]) -> list[str]:
    lines = ["", "## 5. Targets", ""]
    rows = []
    for target in targets:
        status = "n/a" if target.met is None else ("met" if target.met else "not met")
        rows.append([target.name, num(target.value), target.goal, status, target.detail])
    lines += table(["target", "value", "goal", "status", "from"], rows, "lrlll")
    machine = results.machine
    lines.append(
        f"\nMeasured on {results.started:%Y-%m-%d}: nproc {machine.nproc}, {machine.cpu_model}, "
        f"Python {machine.python}, Rasa {machine.rasa}; both assistants in the same run."
    )
    return lines


def render(results: BenchResults, targets: list[Target]) -> str:
    """The whole Markdown report of one run."""
    lines = _header(results)
    lines += _nlu_section(results)
    lines += _latency_section(results)
    lines += _training_section(results)
    lines += _memory_section(results)
    lines += _targets_section(results, targets)
    if results.notes:
        lines += ["", "## Notes", "", *(f"- {note}" for note in results.notes)]
    if results.errors:
        lines += ["", "## Errors"]
        for error in results.errors:
            head, _, tail = error.partition("\n")
            lines += ["", f"- {head}"]
            if tail:
                lines += ["", "```text", tail, "```"]
    return "\n".join(lines) + "\n"
