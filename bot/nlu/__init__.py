"""Rasa graph components for Japanese."""

from bot.identity.redact import install_redaction

# The rasa server imports this package when it loads the model, after it has set up its
# log handlers: the one place our code runs in that process. From here on nothing it
# logs or warns shows a birth date, phone or member number a member typed.
install_redaction()
