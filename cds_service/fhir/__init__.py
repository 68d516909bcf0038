"""FHIR I/O: prefetch templates, searches against the EHR's FHIR server, and the prefetch strategy."""
