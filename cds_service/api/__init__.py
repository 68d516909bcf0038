"""The HTTP layer: thin Flask blueprints and the app factory."""
