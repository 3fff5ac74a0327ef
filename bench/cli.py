"""The command line of `python -m bench`."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import signal
import sys
from collections.abc import Sequence
from types import FrameType

from bench import report, runner, targets
from bench.results import BenchResults
from bench.settings import REPORT_JSON_PATH, REPORT_PATH, Settings


def parse_settings(argv: Sequence[str] | None = None) -> Settings:
    """Reads the command line into run settings."""
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark the assistant against `rasa init` and print a Markdown report.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="fewer messages (40 sequential, 20 conversations × 5); same trainings",
    )
    parser.add_argument("--skip-nlu", action="store_true", help="skip the NLU evaluation")
    parser.add_argument(
        "--skip-latency", action="store_true", help="skip the servers (latency, memory)"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the run's models and test outputs"
    )
    args = parser.parse_args(argv)
    settings = Settings(
        run_nlu=not args.skip_nlu, run_latency=not args.skip_latency, keep_artifacts=args.keep
    )
    if args.quick:
        settings = dataclasses.replace(
            settings, quick=True, sequential_messages=40, messages_per_conversation=5
        )
    return settings


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _write(results: BenchResults, markdown: str, found: list[targets.Target]) -> None:
    REPORT_PATH.parent.mkdir(parents=True, exist_ok=True)
    REPORT_PATH.write_text(markdown, encoding="utf-8")
    figures = {
        "results": dataclasses.asdict(results),
        "targets": [dataclasses.asdict(t) for t in found],
    }
    REPORT_JSON_PATH.write_text(
        json.dumps(figures, indent=2, ensure_ascii=False, default=str), encoding="utf-8"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the benchmark, prints the report and writes it to var/bench/report.md.

    Args:
        argv: The arguments (default: the process's).

    Returns:
        0, or 1 if a phase failed, or 130 if interrupted.
    """
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s bench %(message)s",
        datefmt="%H:%M:%S",
    )
    settings = parse_settings(argv)
    # SIGTERM unwinds like Ctrl-C, so every child process group is stopped.
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        results = runner.run(settings)
    except KeyboardInterrupt:
        logging.getLogger(__name__).error("interrupted; all started processes were stopped")
        return 130
    found = targets.evaluate(
        results.nlu.get("product"),
        results.nlu.get("default"),
        results.systems.get("product"),
        results.systems.get("rasa-init"),
        settings.conversations,
    )
    markdown = report.render(results, found)
    _write(results, markdown, found)
    sys.stdout.write(markdown)
    logging.getLogger(__name__).info("report written to %s", REPORT_PATH)
    return 1 if results.errors else 0
