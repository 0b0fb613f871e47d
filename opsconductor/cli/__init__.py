"""The `opsconductor` command: the parser and command table (main.py) and one thin module per
command, each parsing its arguments, calling a library function and printing the result."""
