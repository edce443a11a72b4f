"""Drive discovery (pyudev), identity, and the system-disk guard."""
