"""Paths and run settings of the benchmark."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
"""The product's project root (where config.yml, domain.yml and data/ live)."""

VAR_DIR = ROOT / "var" / "bench"
"""Everything the benchmark writes: logs, the report, temporary models."""

REPORT_PATH = VAR_DIR / "report.md"
REPORT_JSON_PATH = VAR_DIR / "report.json"
LOG_DIR = VAR_DIR / "logs"
RASA_INIT_DIR = VAR_DIR / "rasa-init"
HOLDOUT_PATH = ROOT / "bench" / "data" / "nlu_holdout.yml"

PRODUCT_CONFIG = ROOT / "config.yml"
PRODUCT_DOMAIN = ROOT / "domain.yml"
PRODUCT_DATA = ROOT / "data"
PRODUCT_ENDPOINTS = ROOT / "endpoints.yml"

LOOPBACK = "127.0.0.1"
"""The only address the benchmark sends traffic to."""


def project_relative(path: Path | str) -> str:
    """``path`` relative to the project root ('.' for the root) if inside it, else as is."""
    candidate = Path(path)
    return str(candidate.relative_to(ROOT)) if candidate.is_relative_to(ROOT) else str(path)


@dataclass(frozen=True)
class Settings:
    """What one run of the benchmark does.

    Attributes:
        quick: Whether this is a `--quick` run (fewer messages, same trainings).
        run_nlu: Whether to train and evaluate the NLU pipelines.
        run_latency: Whether to train the full models and measure the servers.
        sequential_messages: Messages sent in the one sequential conversation.
        conversations: Concurrent conversations in the concurrent phase.
        messages_per_conversation: Messages each concurrent conversation sends.
        warmup_messages: Messages sent to each server before measuring.
        seed: Seed of the message sample.
        request_timeout_s: Timeout of one REST request.
        phase_deadline_s: Deadline of one measuring phase (no request starts later).
        startup_deadline_s: How long a server may take to become ready.
        command_timeout_s: How long one `rasa train`/`rasa test`/`rasa init` may take.
        keep_artifacts: Keep the temporary run directory (models, test outputs).
    """

    quick: bool = False
    run_nlu: bool = True
    run_latency: bool = True
    sequential_messages: int = 200
    conversations: int = 20
    messages_per_conversation: int = 10
    warmup_messages: int = 5
    seed: int = 20240601
    request_timeout_s: float = 30.0
    phase_deadline_s: float = 300.0
    startup_deadline_s: float = 300.0
    command_timeout_s: float = 1800.0
    keep_artifacts: bool = False

    @property
    def concurrent_messages(self) -> int:
        """Total messages of the concurrent phase."""
        return self.conversations * self.messages_per_conversation

    @property
    def mode(self) -> str:
        """A short name of the run's mode for the report."""
        return "quick" if self.quick else "full"
