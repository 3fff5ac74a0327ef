"""rasa-sdk adapters: read the tracker, call a ``bot`` service, utter, return events."""
