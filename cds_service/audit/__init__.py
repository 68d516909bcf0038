"""Audit and feedback store: which cards were issued and what clinicians did with them (no clinical data)."""
