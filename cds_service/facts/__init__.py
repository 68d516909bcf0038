"""Facts: the one place that knows FHIR resource shapes and codes."""
