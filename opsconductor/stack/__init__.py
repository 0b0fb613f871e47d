"""The local mesh behind `opsconductor up`: spec, supervisor, processes, ports, control socket and state."""
