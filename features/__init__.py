"""Feature build: the raw data contract, the synthetic retailer, and raw → feature tables."""
