"""Running a service process: the gRPC server and its options, honest health, supervised
background tasks, garbage-collector settings. May import shoplib's root, shoplib.calls,
shoplib.observability, shoplib.rules and shoplib.security."""
