"""Hand-off to a person: escalations, the dialog, staff replies and their relay, transcripts."""
