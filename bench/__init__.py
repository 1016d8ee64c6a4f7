"""botkit's benchmarks: what the framework costs on top of the model.

Run ``python -m bench`` from the repository root (``--quick`` for a smoke run,
``--only NAME`` for one scenario). Every scenario measures a baseline in the same run
and prints one line with its figure and its ratio; see ``BENCHMARKS.md``. Nothing here
is a test: a benchmark never fails on a timing.
"""
