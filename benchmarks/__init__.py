"""omnihub's benchmark suite (issue 5): run it with ``python benchmarks/run.py [--quick]``.

Each benchmark measures omnihub through its public entry points (``omnihub-compile``, the
generated functions, ``omnihub.hub.fetch``) next to a baseline measured in the same run, and
prints one ``<name>: ours=... baseline=... ratio=... target=... PASS|FAIL`` line.
"""
