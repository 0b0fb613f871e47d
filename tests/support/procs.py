"""Process helpers for tests: the operator tool's own, so tests start things the way users do."""

from opsconductor.stack.ports import free_port
from opsconductor.stack.processes import BIN, Child, health_status, wait_for, wait_held

Process = Child

__all__ = ["BIN", "Process", "free_port", "health_status", "wait_for", "wait_held"]
