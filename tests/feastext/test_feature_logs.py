"""What the served-feature log relies on in Feast: the logging schema's names and the statuses."""

from __future__ import annotations

import pyarrow as pa
from feast.protos.feast.serving import ServingService_pb2 as serving

from demand.featurestore import open_store
from feastext.feature_logs import LOG_DATE, LOG_TIMESTAMP, REQUEST_ID, Status, logging_schema


def test_the_statuses_are_feasts():
    assert (Status.PRESENT, Status.NULL_VALUE, Status.NOT_FOUND, Status.OUTSIDE_MAX_AGE) == (
        serving.PRESENT,
        serving.NULL_VALUE,
        serving.NOT_FOUND,
        serving.OUTSIDE_MAX_AGE,
    )


def test_the_schema_names_each_feature_its_time_and_status(feature_env):
    store = open_store(feature_env)
    schema = logging_schema(store, feature_env.feature_service)
    service = store.get_feature_service(feature_env.feature_service)
    projection = service.feature_view_projections[0]
    feature = projection.features[0].name
    column = f"{projection.name_to_use()}__{feature}"
    assert {column, f"{column}__timestamp", f"{column}__status"} <= set(schema.names)
    assert schema.field(f"{column}__status").type == pa.int32()
    assert pa.types.is_timestamp(schema.field(f"{column}__timestamp").type)
    assert schema.names[-3:] == [LOG_TIMESTAMP, LOG_DATE, REQUEST_ID]
    assert {"store_id", "product_id"} <= set(schema.names)
