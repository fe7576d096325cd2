"""Operator tooling: run the stack, demos, load, comparison, chaos. Services never import this."""
