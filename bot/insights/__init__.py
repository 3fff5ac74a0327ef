"""Figures for the privacy officer: what members ask, where the assistant fails, deadlines.

Every figure is computed from the records that already exist — Rasa's ``events`` table
(the tracker store) and the app database (escalations, audit log, verifications,
outbound messages, cases) — by aggregate queries, never from a copy of the data:

- :mod:`bot.insights.period`: the period (last 7, 30 or 90 Japan days) and its days and weeks.
- :mod:`bot.insights.events`: what Rasa's events say, and the index that keeps it fast.
- :mod:`bot.insights.figures`: every figure of the overview, in one value.
- :mod:`bot.insights.unanswered`: the member messages the assistant did not understand,
  masked as transcripts are, grouped by :mod:`bot.insights.similarity`.
- :mod:`bot.insights.svg`: the charts, drawn on the server as SVG (no script).
- :mod:`bot.insights.report`: the same figures as a table or CSV (``python -m bot.insights``).
"""
