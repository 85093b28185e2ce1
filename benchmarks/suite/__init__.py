"""The benchmark suite behind `python benchmarks/run.py`: timing, our candidates, the reference packages, training
throughput and the report. Nothing here is imported by the framework itself."""
