"""The mesh's certificate authority and workload certificates: made and renewed by the operator
tool for a local stack, and by a one-shot container for compose (Kubernetes uses cert-manager)."""
