"""Benchmarks and preference data: ``marco eval`` (CoT against MCTS on
MGSM/GSM8K-style files) and DPO pairs from search trees (``marco export-dpo``).

No terminal I/O here; the CLI and tests drive these use cases. Nothing is
re-exported: importing one module (``voting`` for ``--conf-score``'s choices)
must not load numpy and the search, which ``marco --help`` never needs.
"""
