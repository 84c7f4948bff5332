"""The harness's test kit: planted-truth data and ground-truth servers.

Importable by ``tests/`` and ``benchmarks/``, never by the product (``spark_harness``):
a test in ``tests/`` checks that no module of ``spark_harness`` imports it.
"""
