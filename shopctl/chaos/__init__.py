"""The chaos suite: the events runtime proved the way trusted systems are proven (Jepsen's method).

Every PlaceOrder is recorded (invocation, completion, status code, order id); real faults are
injected into real processes (SIGKILL, SIGSTOP, crash points, Redis killed, dropped responses,
poison entries, bad requests); then the faults stop, the system drains, and one final read of the
store classifies every order: completed once, lost, duplicated or stuck. A run that cannot show
its fault fired is inconclusive, and each scenario has a control run that disables the protection
under test, to show that the checker does catch the loss. `python -m shopctl chaos [--quick]`.
"""
