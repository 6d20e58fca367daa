"""The generated retailers: demo and test data, not the runtime path."""
