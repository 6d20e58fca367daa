"""Monitoring the live platform: served-vs-offline skew, live evidence from shadow forecasts."""
