"""The benchmarks of the privacy assistant, each against a baseline measured in the same run.

``python -m bench`` (the assistant against `rasa init`'s), ``bench.lookup`` and
``bench.verification_dialog``, ``bench.cases``, ``bench.channels``, ``bench.console``: see
the Makefile's bench targets and docs/benchmarks.md. They share how servers start
(bench.servers), how requests are timed (bench.stats, bench.rest), the databases they fill
(bench.databases), how reports are written (bench.report) and the command line (bench.cli).
"""
