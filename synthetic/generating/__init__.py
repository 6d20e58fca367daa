"""The synthetic retailer, one store or one run of days at a time (synthetic/generator.py)."""
