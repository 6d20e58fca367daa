"""The synthetic retailer's demand, one store or one run of days at a time (see features/generator.py)."""
