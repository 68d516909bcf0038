"""The consensus as pure functions over facts (see CONSENSUS-RULES.md)."""
