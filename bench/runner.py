"""Running the benchmark's phases and collecting their figures."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from bench import datasets, machine, nlu, rasa_cli, systems
from bench.results import BenchResults
from bench.settings import (
    HOLDOUT_PATH,
    PRODUCT_CONFIG,
    PRODUCT_DATA,
    PRODUCT_DOMAIN,
    VAR_DIR,
    Settings,
)

logger = logging.getLogger(__name__)


def _phase(results: BenchResults, name: str, action: Callable[[], None]) -> bool:
    """Runs one phase; a failure is recorded in the report and the run goes on."""
    logger.info("=== %s", name)
    try:
        action()
    except Exception as exc:  # a failed phase is reported, the run goes on
        logger.error("%s failed: %s", name, exc)
        results.errors.append(f"{name}: {exc}")
        return False
    return True


def _require(*paths: Path) -> None:
    missing = [str(path) for path in paths if not path.exists()]
    if missing:
        raise FileNotFoundError(f"missing: {', '.join(missing)}")


def _run_nlu(results: BenchResults, run_dir: Path) -> None:
    _require(PRODUCT_CONFIG, PRODUCT_DATA, HOLDOUT_PATH)
    results.dataset = datasets.describe(HOLDOUT_PATH, PRODUCT_DATA)
    default_config = run_dir / "rasa-init-config.yml"
    shutil.copyfile(rasa_cli.initial_project_file("config.yml"), default_config)
    for name, config in (("product", PRODUCT_CONFIG), ("default", default_config)):
        results.pipelines[name] = nlu.pipeline_components(config)
        scores, training = nlu.evaluate_pipeline(name, config, run_dir, results.settings)
        results.nlu[name] = scores
        results.trainings.append(training)


def _run_system(results: BenchResults, assistant: systems.Assistant, run_dir: Path) -> None:
    run, training = systems.benchmark(assistant, run_dir, results.settings, run_dir.name)
    results.trainings.append(training)
    results.systems[assistant.key] = run


def _run_product(results: BenchResults, run_dir: Path) -> None:
    _require(PRODUCT_CONFIG, PRODUCT_DOMAIN, PRODUCT_DATA, HOLDOUT_PATH)
    _run_system(results, systems.product_assistant(results.settings), run_dir)


def _run_rasa_init(results: BenchResults, run_dir: Path) -> None:
    note = systems.ensure_rasa_init_project(results.settings.command_timeout_s)
    if note:
        results.notes.append(note)
    _run_system(results, systems.rasa_init_assistant(results.settings), run_dir)


def run(settings: Settings) -> BenchResults:
    """Runs every phase the settings ask for and returns the figures.

    Models and test outputs go to a temporary directory under var/bench/, removed at
    the end unless ``settings.keep_artifacts``.

    Args:
        settings: What to run.

    Returns:
        The figures; failed phases are listed in ``errors``.
    """
    results = BenchResults(
        settings=settings, machine=machine.collect(), started=datetime.now(timezone.utc)
    )
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    run_dir = Path(tempfile.mkdtemp(prefix=f"run-{uuid.uuid4().hex[:8]}-", dir=VAR_DIR))
    try:
        if settings.run_nlu:
            _phase(results, "NLU quality", lambda: _run_nlu(results, run_dir))
        if settings.run_latency:
            _phase(results, "product servers", lambda: _run_product(results, run_dir))
            _phase(results, "rasa init servers", lambda: _run_rasa_init(results, run_dir))
    finally:
        if settings.keep_artifacts:
            logger.info("kept models and test outputs in %s", run_dir)
        else:
            shutil.rmtree(run_dir, ignore_errors=True)
    results.finished = datetime.now(timezone.utc)
    results.load_average_end = os.getloadavg()[0]
    return results
