"""OpsConductor Mesh services: the public automation service and the internal pipeline."""
