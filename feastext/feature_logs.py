"""Feast's feature-logging schema for a feature service, and its field statuses.

Feast logs served features only from its Go feature server; the Python side has the
schema (``FeatureServiceLoggingSource.get_schema``) and an offline-store writer
(``FeatureStore.write_logged_features``). The service logs in that schema, with its
own writer (serving/feature_log.py), because Feast's writer does not fit:

* it needs a ``logging_config`` on the feature service, and writes through the offline
  store: the platform's ASOF store (feastext/offline_asof.py) inherits DuckDB's, the ibis
  writer, which writes
  ``{destination.path}/<uuid>-{i}.parquet`` literally (a file named ``…-{i}.parquet``; its
  own "TODO always write to directory") and ignores ``repo_path`` for a relative path;
* it is synchronous: called per request it would put a parquet write on the request path.

So the files are plain parquet in Feast's schema (the logging source's columns first, in
its order and types), one directory per feature service, readable as Feast's
``FileLoggingDestination(path=…).to_data_source()`` reads them, plus the platform's own
columns after Feast's (model version, prediction, …), which Feast's readers ignore.

Relies on (checked against feast 0.67.0): ``feast.feature_logging.FeatureServiceLoggingSource``
and its ``get_schema(registry)``; the ``FieldStatus`` values of
``feast.protos.feast.serving.ServingService_pb2`` (PRESENT 1, NULL_VALUE 2, NOT_FOUND 3,
OUTSIDE_MAX_AGE 4); the column names ``<view>__<feature>``, ``…__timestamp``, ``…__status``
and ``__log_timestamp``, ``__log_date``, ``__request_id``.
tests/feastext/test_feature_logs.py fails first when any of these change.
"""

from __future__ import annotations

import pyarrow as pa

LOG_TIMESTAMP = "__log_timestamp"
LOG_DATE = "__log_date"
REQUEST_ID = "__request_id"


class Status:
    """Feast's FieldStatus: how a logged feature value came to be."""

    PRESENT = 1
    NULL_VALUE = 2  # the row is there, the value is null
    NOT_FOUND = 3  # no row for the key
    OUTSIDE_MAX_AGE = 4  # a row, but unusable at the origin (past its TTL, or newer)


def value_column(view: str, feature: str) -> str:
    return f"{view}__{feature}"


def logging_schema(store, feature_service: str) -> pa.Schema:
    """The columns Feast's feature server would log for ``feature_service``, in its order."""
    from feast.feature_logging import FeatureServiceLoggingSource

    service = store.get_feature_service(feature_service)
    source = FeatureServiceLoggingSource(service, store.project)
    return source.get_schema(store.registry)
