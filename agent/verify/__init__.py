"""Verification: expectations, the NIST sampling plan, and read-back."""
