"""litert's conversion worker as a package, one module per build stage. Run through
`worker.py`, which sets up the protocol channel first."""
