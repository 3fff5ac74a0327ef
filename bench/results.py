"""The figures one benchmark run collects, as plain data classes."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from bench.settings import Settings


@dataclass(frozen=True)
class LabelScore:
    """Precision, recall and F1 of one label (an intent or an entity)."""

    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class ConfusionPair:
    """How often messages of intent ``true`` were predicted as ``predicted``."""

    true: str
    predicted: str
    count: int


@dataclass(frozen=True)
class EntityScores:
    """Token-based entity scores of one extractor, as `rasa test nlu` computes them."""

    extractor: str
    micro: LabelScore
    per_entity: dict[str, LabelScore]


@dataclass(frozen=True)
class NluScores:
    """NLU quality of one pipeline on the held-out split."""

    pipeline: str
    examples: int
    accuracy: float
    macro_f1: float
    weighted_f1: float
    per_intent: dict[str, LabelScore]
    entities: list[EntityScores]
    confusions: list[ConfusionPair]


@dataclass(frozen=True)
class DatasetInfo:
    """What the held-out split holds and how it relates to the training data."""

    holdout_path: str
    holdout_examples: int
    holdout_intents: int
    holdout_entity_annotations: int
    training_files: list[str]
    training_examples: int
    leaked_texts: int
    """Held-out texts that appear verbatim in the training data."""
    unseen_intents: list[str]
    """Held-out intents that no training example has."""


@dataclass(frozen=True)
class TrainingRun:
    """One timed `rasa train` or `rasa train nlu` command."""

    label: str
    directory: str
    """Where the command ran, relative to the project root."""
    command: str
    """The command as typed there, without its --out/--fixed-model-name arguments."""
    seconds: float
    load_average: float
    """The machine's 1-minute load average when the command ended."""


@dataclass(frozen=True)
class LatencySummary:
    """Latency and throughput of one measuring phase."""

    planned: int
    sent: int
    ok: int
    errors: int
    empty_replies: int
    p50_ms: float | None
    p95_ms: float | None
    mean_ms: float | None
    max_ms: float | None
    wall_s: float
    throughput: float
    """Successful messages per second of wall time."""
    error_kinds: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class MemoryPeak:
    """Peak resident memory (VmHWM) of one server's process group."""

    process: str
    peak_mib: float
    processes: int


@dataclass
class SystemRun:
    """Everything measured for one assistant's servers."""

    system: str
    startup_s: dict[str, float] = field(default_factory=dict)
    sequential: LatencySummary | None = None
    concurrent: LatencySummary | None = None
    memory: list[MemoryPeak] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class MachineInfo:
    """The machine and software versions the figures were measured with."""

    nproc: int
    cpu_model: str
    memory_gib: float
    python: str
    rasa: str
    rasa_sdk: str
    tensorflow: str
    jsonschema: str
    git_revision: str
    load_average: float
    """The 1-minute load average when the run started (other work makes figures noisy)."""


@dataclass
class BenchResults:
    """All figures of one run, filled in phase by phase."""

    settings: Settings
    machine: MachineInfo
    started: datetime
    finished: datetime | None = None
    load_average_end: float | None = None
    dataset: DatasetInfo | None = None
    nlu: dict[str, NluScores] = field(default_factory=dict)
    pipelines: dict[str, list[str]] = field(default_factory=dict)
    trainings: list[TrainingRun] = field(default_factory=list)
    systems: dict[str, SystemRun] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
