"""Rasa graph components for Japanese."""
