"""Hook handlers: one per CDS service, between the HTTP layer and the engine."""
