"""The command line every benchmark shares: its help, its sizes, how it logs and stops."""

from __future__ import annotations

import argparse
import io
import logging
import signal
import sys
from collections.abc import Callable
from types import FrameType

logger = logging.getLogger(__name__)


def parser(prog: str, doc: str | None) -> argparse.ArgumentParser:
    """An argument parser whose help is the benchmark's module docstring."""
    return argparse.ArgumentParser(
        prog=prog, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )


def at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number of at least ``minimum`` (else exit status 2)."""

    def count(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return count


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run(measure: Callable[[], int]) -> int:
    """Runs a benchmark with its progress on stderr; SIGTERM stops it as Ctrl-C does.

    Either way every server it started is stopped on the way out.

    Returns:
        ``measure()``'s exit status, or 130 if interrupted.
    """
    # The benchmarks' own progress lines only: the product's logs stay at WARNING.
    progress = logging.StreamHandler(sys.stderr)
    progress.setFormatter(logging.Formatter("%(asctime)s bench %(message)s", "%H:%M:%S"))
    bench_logger = logging.getLogger("bench")
    bench_logger.addHandler(progress)
    bench_logger.setLevel(logging.INFO)
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)  # each printed line shows at once
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        return measure()
    except KeyboardInterrupt:
        logger.error("interrupted; every process it started was stopped")
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
        bench_logger.removeHandler(progress)
