"""What both benches share. load.py: the closed-loop client, its runs and percentiles; bare.py:
the bare servicers and the body of a bare server process; durable.py: the durable work of an
order (the real commits, counted, done the cheapest way) for the durable twins; processes.py:
starting and stopping those processes; twins.py: bare, durable and real side by side with their
aims; cpu.py: CPU per process and per call, and what the rest of the machine took."""
