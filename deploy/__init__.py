"""Shipping the service: the Bento, its requirements, the container image, its smoke test."""
