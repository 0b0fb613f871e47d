"""Process helpers for tests: the mesh tooling's own, so tests start things the way users do."""

from mesh.processes import BIN, Child, free_port, health_status, wait_for

Process = Child

__all__ = ["BIN", "Process", "free_port", "health_status", "wait_for"]
