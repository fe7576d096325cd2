"""The payment service: charges orders (Redis keys payment:*), once per order, ever."""
