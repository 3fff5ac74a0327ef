"""``python -m bot.worker``: deliver the outbox and purge on a schedule until stopped."""

from __future__ import annotations

import logging
import signal
import sys
from types import FrameType

from bot.core.heap import freeze_startup_objects
from bot.settings import SettingsError, load_settings
from bot.worker import Worker


def main() -> int:
    """Run the worker until SIGTERM or SIGINT; 2 on a configuration error."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        worker = Worker(load_settings())
    except SettingsError as error:
        print(f"設定の誤り: {error}", file=sys.stderr)
        return 2

    def stop(signum: int, frame: FrameType | None) -> None:
        worker.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    freeze_startup_objects()  # bot.core.heap: no long pause between deliveries
    worker.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
