"""Staff: accounts, the escalation queue on the command line, resuming conversations in Rasa.

``python -m bot.staff create-account|queue|claim|hand-back|close`` (see ``cli.py``).
"""
