"""Benchmarking: timing like trtexec, the environment a number was measured in, runs and reports."""
