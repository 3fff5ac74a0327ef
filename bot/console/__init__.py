"""The staff console: a small server-rendered web application for the back office.

``python -m bot.console`` serves it on ``CONSOLE_PORT``. Staff sign in with their
accounts (``bot.staff.accounts``) and work the escalation queue (reading the
conversation from Rasa's tracker store, replying, handing back), the formal requests
(``bot.cases.staff``), the audit log and the accounts, each according to their role.
See ``docs/console.md``.
"""
