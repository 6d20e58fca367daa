"""Shared pieces of the demand forecasting platform: settings, the feature contract, the CLI."""
