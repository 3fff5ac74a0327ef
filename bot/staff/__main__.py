"""Entry point of ``python -m bot.staff``."""

from bot.staff.cli import main

raise SystemExit(main())
