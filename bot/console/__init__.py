"""The staff console: a small server-rendered web application for the back office.

``python -m bot.console`` serves it on ``CONSOLE_PORT``. Staff sign in with their
accounts (``bot.staff.accounts``) and work the escalation queue (reading the
conversation from Rasa's tracker store, replying, handing back), the formal requests
(``bot.cases.staff``), the audit log and the accounts, each according to their role.
See ``docs/console.md``.

The handlers are thin: they parse the request, call the feature service that owns the
record (``bot.handoff``, ``bot.cases``, ``bot.staff``, ``bot.db.audit_log``) inside the
console's unit of work (``Console.unit``; transcripts through ``Console.tracker``) and
render. No query is written here (``tests/console/test_thin_handlers.py``).
"""
