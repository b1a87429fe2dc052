"""The conformance matrix (issue 16): cases, engines, normalisation, the generated report."""
