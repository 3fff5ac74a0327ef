"""rasa-sdk adapters: read the tracker, call a ``bot`` service, utter, return events."""

from bot.identity.redact import install_redaction

# The action server has configured its log handlers by the time it imports this
# package: from here on nothing it logs shows a birth date, phone or member number.
install_redaction()
