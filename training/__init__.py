"""Training: origins and labels, training sets through Feast, CatBoost, backtests, MLflow."""
