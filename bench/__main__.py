"""The assistant against Rasa's own, measured in the same run: ``python -m bench``.

NLU quality on the held-out split against the default pipeline that `rasa init` writes;
REST latency and throughput, training time and peak server memory against the `rasa
init` assistant; the members' words development set (bench/members_words.py) on the
models the run trained. Prints one Markdown report, also written to var/bench/report.md (the
raw figures to var/bench/report.json). Models and test outputs go to a temporary
directory under var/bench/, removed at the end.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import sys
import tempfile
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from bench import cli, latency, members_words, nlu, training
from bench.latency import Settings, SystemRun
from bench.nlu import NluScores
from bench.report import Machine, header, num, table
from bench.servers import VAR_DIR
from bench.stats import ratio
from bench.training import TrainingRun
from bot.settings import PROJECT_ROOT

logger = logging.getLogger("bench.main")  # __name__ is "__main__" under `python -m`

REPORT_PATH = VAR_DIR / "report.md"
ACCURACY_GOAL = 0.95
THROUGHPUT_RATIO_GOAL = 0.8
P95_RATIO_GOAL = 1.5


@dataclass
class Results:
    """All figures of one run, filled in phase by phase; failed phases in ``errors``."""

    settings: Settings
    machine: Machine
    started: datetime
    dataset: list[str] = field(default_factory=list)  # the report's lines on the holdout
    pipelines: dict[str, list[str]] = field(default_factory=dict)
    nlu: dict[str, NluScores] = field(default_factory=dict)
    trainings: list[TrainingRun] = field(default_factory=list)
    systems: dict[str, SystemRun] = field(default_factory=dict)
    words: list[str] = field(default_factory=list)  # the report's members' words section
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Target:
    """One target: the measured value (None if it could not be), the goal, whether met."""

    name: str
    value: float | None
    goal: str
    met: bool | None
    detail: str  # the figures the value was computed from


def parse_settings(argv: Sequence[str] | None = None) -> Settings:
    """Reads the command line into run settings."""
    parser = cli.parser("python -m bench", __doc__)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="fewer messages (40 sequential, 20 conversations × 5); the same trainings",
    )
    if parser.parse_args(argv).quick:
        return Settings(quick=True, sequential_messages=40, messages_per_conversation=5)
    return Settings()


def _phase(results: Results, name: str, action: Callable[[], None]) -> None:
    """Runs one phase; a failure is recorded for the report and the run goes on."""
    logger.info("=== %s", name)
    try:
        action()
    except Exception as exc:  # a failed phase is reported, the run goes on
        logger.error("%s failed: %s", name, exc)
        results.errors.append(f"{name}: {exc}")


def run(settings: Settings) -> Results:
    """Runs every phase and returns the figures (models and test outputs are removed)."""
    results = Results(settings, Machine.collect(), datetime.now(timezone.utc))
    VAR_DIR.mkdir(parents=True, exist_ok=True)

    def nlu_phase(run_dir: Path) -> None:
        results.dataset = nlu.describe_dataset()
        default_config = run_dir / "rasa-init-config.yml"
        shutil.copyfile(training.rasa_file("cli", "initial_project", "config.yml"), default_config)
        for name, config in (("product", PROJECT_ROOT / "config.yml"), ("default", default_config)):
            results.pipelines[name] = nlu.pipeline_components(config)
            results.nlu[name], trained = nlu.evaluate(name, config, run_dir)
            results.trainings.append(trained)

    def servers_phase(key: str, run_dir: Path) -> None:
        if key == "rasa-init":
            note = latency.ensure_rasa_init_project()
            results.notes += [note] if note else []
        results.systems[key], trained = latency.benchmark(key, run_dir, settings)
        results.trainings.append(trained)

    def words_phase(run_dir: Path) -> None:
        models = run_dir / "models"  # where bench.training.train puts each labelled model
        results.words = members_words.bench_section(
            models / "nlu-product.tar.gz", models / "full-product.tar.gz", run_dir
        )

    with tempfile.TemporaryDirectory(prefix=f"run-{uuid.uuid4().hex[:8]}-", dir=VAR_DIR) as tmp:
        run_dir = Path(tmp)
        _phase(results, "NLU quality", lambda: nlu_phase(run_dir))
        _phase(results, "product servers", lambda: servers_phase("product", run_dir))
        _phase(results, "rasa init servers", lambda: servers_phase("rasa-init", run_dir))
        _phase(results, "members' words", lambda: words_phase(run_dir))
    return results


def targets(results: Results) -> list[Target]:
    """The targets: accuracy, and ratios against `rasa init` measured in the same run."""
    product, default = results.nlu.get("product"), results.nlu.get("default")
    accuracy = product.accuracy if product else None
    baseline = default.accuracy if default else None
    difference = None if accuracy is None or baseline is None else accuracy - baseline
    both = results.systems.get("product"), results.systems.get("rasa-init")
    throughputs = [run.concurrent.per_second if run and run.concurrent else None for run in both]
    p95s = [run.sequential.ms(95) if run and run.sequential else None for run in both]
    throughput, p95 = ratio(*throughputs), ratio(*p95s)
    conversations = results.settings.conversations
    return [
        Target(
            "intent accuracy on the holdout (product pipeline)",
            accuracy,
            f"≥ {ACCURACY_GOAL:.2f}",
            None if accuracy is None else accuracy >= ACCURACY_GOAL,
            f"default pipeline {num(baseline)}; difference {num(difference, '+.3f')}",
        ),
        Target(
            f"throughput at {conversations} concurrent conversations, product / rasa init",
            throughput,
            f"≥ {THROUGHPUT_RATIO_GOAL:.1f}",
            None if throughput is None else throughput >= THROUGHPUT_RATIO_GOAL,
            f"{num(throughputs[0], '.2f')} / {num(throughputs[1], '.2f')} msg/s",
        ),
        Target(
            "p95 latency of 1 conversation, product / rasa init",
            p95,
            f"≤ {P95_RATIO_GOAL:.1f}",
            None if p95 is None else p95 <= P95_RATIO_GOAL,
            f"{num(p95s[0], '.1f')} / {num(p95s[1], '.1f')} ms",
        ),
    ]


def render(results: Results, found: list[Target]) -> str:
    """The whole Markdown report of one run."""
    settings, machine = results.settings, results.machine
    mode = (
        f"- Mode: {'quick' if settings.quick else 'full'} ({settings.sequential_messages} "
        f"sequential messages; {settings.conversations} concurrent conversations × "
        f"{settings.messages_per_conversation} messages)"
    )
    lines = ["# Privacy assistant benchmark", "", *header(results.started, machine, mode)]
    lines += nlu.section(results.dataset, results.pipelines, results.nlu)
    lines += latency.section(settings, list(results.systems.values()))
    lines += training.section(results.trainings)
    lines += latency.memory_section(list(results.systems.values()))
    status = {None: "n/a", True: "met", False: "not met"}
    rows = [
        [target.name, num(target.value), target.goal, status[target.met], target.detail]
        for target in found
    ]
    lines += [
        "",
        "## 5. Targets",
        "",
        *table(["target", "value", "goal", "status", "from"], rows, "lrlll"),
        "",
        f"Measured on {results.started:%Y-%m-%d}: nproc {machine.nproc}, {machine.cpu_model}, "
        f"Python {machine.python}, Rasa {machine.rasa}; both assistants in the same run.",
    ]
    lines += results.words
    if results.notes:
        lines += ["", "## Notes", "", *(f"- {note}" for note in results.notes)]
    if results.errors:
        lines += ["", "## Errors"]
        for error in results.errors:
            head, _, tail = error.partition("\n")
            lines += ["", f"- {head}", *(["", "```text", tail, "```"] if tail else [])]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the benchmark, prints the report and writes it to var/bench/.

    Returns:
        0, or 1 if a phase failed, or 130 if interrupted.
    """
    settings = parse_settings(argv)

    def measure() -> int:
        results = run(settings)
        found = targets(results)
        markdown = render(results, found)
        REPORT_PATH.write_text(markdown, encoding="utf-8")
        figures = {
            "results": dataclasses.asdict(results),
            "targets": [dataclasses.asdict(target) for target in found],
        }
        REPORT_PATH.with_suffix(".json").write_text(
            json.dumps(figures, indent=2, ensure_ascii=False, default=str), encoding="utf-8"
        )
        sys.stdout.write(markdown)
        logger.info("report written to %s", REPORT_PATH)
        return 1 if results.errors else 0

    return cli.run(measure)


if __name__ == "__main__":
    raise SystemExit(main())
