"""The order service: owns orders (Redis keys order:*) and starts the payment flow."""
