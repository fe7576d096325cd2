"""The commit: a handler's writes as data (writes), the one Lua script that applies them
atomically and the committers that run it (plain, replicated, traced), the unit of work and the
event-handler table (dispatch). May import shoplib's root, shoplib.store, shoplib.streams (the
trace context an event carries), shoplib.observability and shoplib.rules."""
