"""The performance benchmark (`make bench`): charts, a floor app, a slow fake FHIR server, and the runner."""
