"""What both benches share. load.py: the closed-loop client, its runs and percentiles; bare.py:
the bare servicers and the body of a bare server process; processes.py: starting and stopping
those processes; cpu.py: CPU per process and per call, and what the rest of the machine took."""
