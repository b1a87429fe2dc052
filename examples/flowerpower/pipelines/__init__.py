"""FlowerPower keeps pipeline modules in ``pipelines/``; flowc imports them by module name."""
