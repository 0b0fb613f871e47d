"""Helpers the tests share: processes on free loopback ports, waited on through health checks."""
