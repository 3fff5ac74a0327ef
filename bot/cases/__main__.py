"""Entry point of ``python -m bot.cases``."""

from bot.cases.cli import main

raise SystemExit(main())
