"""Who the member is: verification, its dialog, the parsers of what members type."""
