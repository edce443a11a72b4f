"""Test doubles for wipe-agent that are never installed on a station.

This package sits at the repository root, outside ``[tool.setuptools.packages.find]``'s
``include``, so neither the wheel nor the sdist's installed packages carry it; pytest finds it
through ``pythonpath`` in ``[tool.pytest.ini_options]`` and the bench scripts run from the
repository root.

* ``emulated`` — emulated-firmware ATA, NVMe and SCSI drives (file-backed, failure injection).
"""
