"""Closing the loop after going live: forecast accuracy, drift, alerts and the report."""
