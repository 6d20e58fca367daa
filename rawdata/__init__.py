"""The raw data contract: schemas, raw I/O and validation, and a retailer's import."""
