"""Campaign memory: what the server has seen, kept per tenant."""
