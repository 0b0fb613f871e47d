"""The public automation service: validates, traces and forwards Execute to the pipeline."""
