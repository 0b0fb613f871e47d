"""The pipeline service: runs tools from a small catalogue, choosing one when none is named."""
