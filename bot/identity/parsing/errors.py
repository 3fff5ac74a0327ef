"""The one error every parser raises, worded for the member."""

from __future__ import annotations


class InputError(ValueError):
    """The member's text could not be read as the value asked for.

    Attributes:
        message: a short, polite Japanese (です・ます) explanation of what is expected,
            with an example, fit for a phone screen. It never repeats what the member
            typed, so it can be sent and logged without revealing personal data.
    """

    message: str

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
