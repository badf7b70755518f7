"""Delivery: rendering templates, composing MIME messages, and transports."""
