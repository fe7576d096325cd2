"""What every service shares, one package per concern: store (a service's Redis), commit (atomic
commits and the unit of work), streams (the Redis Streams runtime), calls (between services),
process (running a service), observability, rules, security. The root keeps what every package
uses (config, log, errors), the event catalogue, the fault seams and the in-memory twins.
Each package's docstring says what it owns and what it may import; no package imports a service."""
