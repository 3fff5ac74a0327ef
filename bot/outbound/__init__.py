"""Messages the product sends on its own: SMS senders, the outbox and its delivery.

Importing the package hooks delivery after commit into SQLAlchemy's sessions
(:func:`bot.outbound.outbox.install`), so that a message written with
:func:`bot.outbound.sender.enqueue` is sent once its transaction commits.
"""

from bot.outbound import outbox as _outbox  # noqa: F401  (installs the after-commit hook)
