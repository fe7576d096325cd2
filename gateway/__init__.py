"""The gateway: the public GatewayService, routing each order to the flow of its mode."""
