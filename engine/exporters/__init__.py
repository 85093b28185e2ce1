"""One file per export format: each exporter takes an ExportJob and the path to write, and returns what it wrote.

The format table (engine/formats.py) names each exporter beside its suffix, backend and packages.
"""
