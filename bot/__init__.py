"""The privacy assistant's core: plain Python, importable without a Rasa server."""
