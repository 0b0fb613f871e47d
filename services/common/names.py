"""Names every part of the mesh agrees on: the gRPC services and their methods, taken from the
generated descriptors so a renamed or added RPC changes them everywhere, and the pools."""

from __future__ import annotations

from opsconductor.automation.v1 import automation_pb2
from opsconductor.pipeline.v1 import pipeline_pb2

_AUTOMATION = automation_pb2.DESCRIPTOR.services_by_name["AutomationService"]
_PIPELINE = pipeline_pb2.DESCRIPTOR.services_by_name["PipelineService"]

AUTOMATION_SERVICE = _AUTOMATION.full_name  # opsconductor.automation.v1.AutomationService
PIPELINE_SERVICE = _PIPELINE.full_name  # opsconductor.pipeline.v1.PipelineService
AUTOMATION_METHODS = tuple(method.name for method in _AUTOMATION.methods)
PIPELINE_METHODS = tuple(method.name for method in _PIPELINE.methods)
AUTOMATION_EXECUTE = f"/{AUTOMATION_SERVICE}/{_AUTOMATION.methods_by_name['Execute'].name}"
PIPELINE_EXECUTE = f"/{PIPELINE_SERVICE}/{_PIPELINE.methods_by_name['Execute'].name}"
PIPELINE_LIST_TOOLS = f"/{PIPELINE_SERVICE}/{_PIPELINE.methods_by_name['ListTools'].name}"

# The gateway sets this header on a copy of a call it mirrors to the canary (and removes it
# from every caller's request); such a call runs read-only tools only.
MIRRORED_HEADER = "x-opsconductor-mirrored"

# A pool is one version of both services; stable and canary run side by side.
POOLS = ("stable", "canary")
