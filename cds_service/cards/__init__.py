"""Findings → CDS Hooks cards, with texts from the top-level cards/ folder."""
