"""flowc.targets: one module per orchestrator; each is a pure function IR -> {relpath: text}."""
