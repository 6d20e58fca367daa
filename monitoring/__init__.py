"""The live platform watched: accuracy against actuals, drift, alerts and the report;
served-vs-offline skew; live evidence from shadow forecasts."""
