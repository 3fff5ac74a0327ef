"""The figures-printing benchmark of the privacy assistant: `python -m bench`.

It measures NLU quality on the held-out split, REST latency and throughput, training
time and peak server memory, each against Rasa's own `rasa init` assistant measured in
the same run, and prints one Markdown report (also written to var/bench/report.md).
"""
