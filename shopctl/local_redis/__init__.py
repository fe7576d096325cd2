"""Developer launchers: a private redis-server and a private Redis Cluster for the stack, the
tests and the benches. Nothing in production imports them."""
