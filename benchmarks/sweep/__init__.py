"""The backbone sweep behind `python sweep.py`: train several configs on one dataset at equal epochs, validate each
best.pt, time them all in one interleaved stage, and report accuracy against latency (CSV, markdown, Pareto plot).

It drives the engine's Python API (the Trainer, `run_val`) and reuses the benchmark suite's export and timing code
(benchmarks/suite/); nothing in the framework imports it."""
