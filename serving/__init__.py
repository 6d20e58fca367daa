"""Serving: forecasts from entity keys, with features from the Feast online store."""
