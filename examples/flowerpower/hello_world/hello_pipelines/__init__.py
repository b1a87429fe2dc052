"""FlowerPower's ``pipelines/`` package of the hello-world project (named apart from the plain
example's ``pipelines`` so both import in one process)."""
