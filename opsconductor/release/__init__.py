"""Release checks and canary analysis: SLOs, one analysis for gate and rollout, smoke, the frontend check."""
