"""Computations on the rates store. Each section's text, tables and figures read one result object."""
