"""Feast's online values, serialized a column at a time: the bytes stock Feast writes.

Feast's local engine turns each Arrow batch into one ``ValueProto`` per cell and one
``EntityKeyProto`` per row (``feast.utils._convert_arrow_to_proto``), which is most of
the time a materialization takes. The same bytes follow from each column's numpy
array by arithmetic: a double is its tag and eight little-endian bytes, an integer its
tag and a varint, a string its tag, a varint length and its UTF-8. This module builds
them that way from the very array Feast converts (``column.to_numpy(zero_copy_only=False)``;
a string column straight from Arrow), into one Arrow binary array per column (the bytes
back to back and their offsets: no Python object per value, which is what the Redis
writer's RESP payload and SQLite's rows are then built from), and repeats Feast's
conversion rules (NaN and None are null; a null timestamp is
Feast's INT64_MIN; a FLOAT is the double rounded to 32 bits). A column whose type or
contents it does not cover (lists, maps, object columns, out-of-range integers) is
converted by Feast's own function, value by value, so every column comes out as Feast
writes it. tests/feastext/test_materialization.py compares the stored bytes with stock
Feast's, key by key.

Relies on (checked against feast 0.67.0): Feast's entity key serialization
(``feast.infra.key_encoding_utils.serialize_entity_key``, version 3), its value protos and
``feast.infra.online_stores.helpers.extract_text_and_num``; the column-wise bytes must equal
what those produce a value at a time (tests/feastext/test_materialization.py).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from feast.value_type import ValueType

# Value's field tags (field number << 3 | wire type), from feast/types/Value.proto
_DOUBLE, _FLOAT, _INT32, _INT64, _BOOL, _TIMESTAMP = 0x29, 0x35, 0x18, 0x20, 0x38, 0x40
_STRING = 0x12
_EMPTY = pa.scalar(b"", pa.binary())


@dataclass(frozen=True)
class Column:
    """One feature's serialized values (b"" for null) as an Arrow binary array and, on
    demand, their text form (the ``value_text`` column of Feast's SQL stores)."""

    values: pa.BinaryArray
    texts: Callable[[], list[str | None]]

    def as_bytes(self) -> list[bytes]:
        return self.values.to_numpy(zero_copy_only=False).tolist()


def _slices(matrix: np.ndarray, lengths: np.ndarray) -> pa.BinaryArray:
    """Row i of ``matrix`` cut to ``lengths[i]`` bytes, as one Arrow binary array: the
    rows' kept bytes back to back and their offsets, no Python object per row."""
    kept = np.arange(matrix.shape[1]) < lengths[:, None]
    data = np.ascontiguousarray(matrix, dtype=np.uint8)[kept]
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    if offsets[-1] >= 2**31:
        raise ValueError("a batch of more than 2 GiB of values: lower online_write_batch_size")
    return pa.Array.from_buffers(
        pa.binary(),
        len(lengths),
        [None, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(data)],
    )


def _fixed(tag: int, payload: np.ndarray, present: np.ndarray) -> pa.BinaryArray:
    """Tag then the little-endian bytes of each value (a double, a float)."""
    raw = payload.view(np.uint8).reshape(len(payload), payload.itemsize)
    matrix = np.empty((len(payload), 1 + payload.itemsize), dtype=np.uint8)
    matrix[:, 0] = tag
    matrix[:, 1:] = raw
    return _slices(matrix, np.where(present, matrix.shape[1], 0))


def _varints(tag: int, numbers: np.ndarray, present: np.ndarray) -> pa.BinaryArray:
    """Tag then the varint of each int64 (a negative one in ten bytes, as protobuf does)."""
    matrix, size = _varint_rows(tag, numbers)
    return _slices(matrix, np.where(present, size, 0))


def _varint_rows(tag: int, numbers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each number's tag and varint as a row of 11 bytes, and how many of them count."""
    unsigned = numbers.astype(np.int64).view(np.uint64)
    groups = np.stack([(unsigned >> np.uint64(7 * k)) & np.uint64(0x7F) for k in range(10)], 1)
    more = np.stack([(unsigned >> np.uint64(7 * (k + 1))) != 0 for k in range(10)], 1)
    more[:, 9] = False
    count = 1 + more[:, :9].sum(axis=1)
    matrix = np.empty((len(numbers), 11), dtype=np.uint8)
    matrix[:, 0] = tag
    matrix[:, 1:] = (groups | (more.astype(np.uint64) << np.uint64(7))).astype(np.uint8)
    return matrix, 1 + count


def _is_text(array: pa.Array) -> bool:
    return pa.types.is_string(array.type) or pa.types.is_large_string(array.type)


def _strings(array: pa.Array) -> Column:
    """Tag, varint length and UTF-8 of each string of an Arrow string column (the str
    Feast takes from it): the heads built as rows of bytes, joined to the text in Arrow."""
    raw = array.cast(pa.binary())
    lengths = pc.binary_length(raw).fill_null(0).to_numpy(zero_copy_only=False)
    matrix, size = _varint_rows(_STRING, lengths.astype(np.int64))
    present = array.is_valid().to_numpy(zero_copy_only=False)
    heads = _slices(matrix, np.where(present, size, 0))
    values = pc.binary_join_element_wise(heads, raw.fill_null(_EMPTY), _EMPTY)
    return Column(values, lambda: array.to_numpy(zero_copy_only=False).tolist())


def _numbers_as_text(numbers: np.ndarray, present: np.ndarray) -> Callable[[], list]:
    return lambda: [
        str(v) if p else None for v, p in zip(numbers.tolist(), present.tolist(), strict=True)
    ]


def _integral(values: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray] | None:
    """int(x) of each value and which are present, as Feast takes an INT32/INT64 column;
    None where Feast's own conversion must decide (objects, inf, out of range)."""
    if values.dtype.kind in "iub":
        return values.astype(np.int64), np.ones(len(values), dtype=bool)
    if values.dtype.kind != "f":
        return None
    present = ~np.isnan(values)
    if not np.all(np.abs(values[present]) < 2.0 ** (bits - 1)):
        return None  # inf, or a value Feast's proto would refuse
    return np.where(present, np.trunc(np.where(present, values, 0)), 0).astype(np.int64), present


def column(array: pa.Array, value_type: ValueType) -> Column:
    """The serialized values of one feature column of a batch."""
    if value_type == ValueType.STRING and _is_text(array):
        return _strings(array)
    values = array.to_numpy(zero_copy_only=False)  # the array Feast converts
    encoded = _vectorised(values, value_type)
    return encoded if encoded is not None else _by_feast(values, value_type)


def _vectorised(values: np.ndarray, value_type: ValueType) -> Column | None:
    n = len(values)
    if value_type == ValueType.DOUBLE and values.dtype.kind in "fi":
        numbers = values.astype(np.float64)
        present = ~np.isnan(numbers)
        return Column(
            _fixed(_DOUBLE, numbers.astype("<f8"), present), _numbers_as_text(numbers, present)
        )
    if value_type == ValueType.FLOAT and values.dtype.kind in "fi":
        wide = values.astype(np.float64)  # float(x) first, as Feast does
        present = ~np.isnan(wide)
        with np.errstate(over="ignore"):
            narrow = wide.astype("<f4")  # what the 32-bit proto field keeps
        return Column(
            _fixed(_FLOAT, narrow, present), _numbers_as_text(narrow.astype(np.float64), present)
        )
    if value_type in (ValueType.INT64, ValueType.INT32):
        integral = _integral(values, 64 if value_type == ValueType.INT64 else 32)
        if integral is None:
            return None
        numbers, present = integral
        if value_type == ValueType.INT32 and np.any(np.abs(numbers[present]) >= 2**31):
            return None
        tag = _INT64 if value_type == ValueType.INT64 else _INT32
        return Column(_varints(tag, numbers, present), _numbers_as_text(numbers, present))
    if value_type == ValueType.BOOL:
        if values.dtype.kind == "b":
            flags, present = values, np.ones(n, dtype=bool)
        elif values.dtype == object and all(v is None or type(v) is bool for v in values):
            present = ~pd.isnull(values)
            flags = np.array([bool(v) for v in np.where(present, values, False)], dtype=bool)
        else:
            return None
        matrix = np.empty((n, 2), dtype=np.uint8)
        matrix[:, 0] = _BOOL
        matrix[:, 1] = flags
        return Column(
            _slices(matrix, np.where(present, 2, 0)),
            lambda: [
                str(f) if p else None for f, p in zip(flags.tolist(), present.tolist(), strict=True)
            ],
        )
    if value_type == ValueType.UNIX_TIMESTAMP and values.dtype.kind == "M":
        # every row is a value: NaT becomes INT64_MIN seconds in Feast's conversion too
        seconds = values.astype("datetime64[s]").astype(np.int64)
        return Column(_varints(_TIMESTAMP, seconds, np.ones(n, dtype=bool)), lambda: [None] * n)
    return None


def _by_feast(values: np.ndarray, value_type: ValueType) -> Column:
    """Feast's own conversion, one value at a time: the reference for every other path."""
    from feast.infra.online_stores.helpers import extract_text_and_num
    from feast.type_map import python_values_to_proto_values

    protos = python_values_to_proto_values(values, value_type)
    return Column(
        pa.array([p.SerializeToString() for p in protos], pa.binary()),
        lambda: [extract_text_and_num(p, False)[0] for p in protos],
    )


def entity_keys(batch: pa.RecordBatch, join_keys: dict[str, ValueType], version: int) -> pa.Array:
    """Each row's serialized entity key, as ``feast.infra.key_encoding_utils.serialize_entity_key``
    writes it: the key count, the join key names (sorted), then each value's type, length,
    bytes. Built a column at a time in Arrow (a binary array); Feast's own function row by
    row for what this does not cover (older serialization versions, other key types, nulls)."""
    names = sorted(join_keys)
    widths = {ValueType.INT64: "<i8", ValueType.INT32: "<i4"}
    columns = [batch.column(k) for k in names]
    covered = version >= 3 and all(
        (_is_text(c) if join_keys[k] == ValueType.STRING else join_keys[k] in widths)
        and not c.null_count
        for k, c in zip(names, columns, strict=True)
    )
    if not covered:
        return _keys_by_feast(batch, join_keys, version)
    n = batch.num_rows
    head = [struct.pack("<I", len(names))]
    for name in names:
        raw = name.encode("utf8")
        head += [struct.pack("<I", ValueType.STRING.value), struct.pack("<I", len(raw)), raw]
    parts: list = [pa.scalar(b"".join(head), pa.binary())]
    for name, values in zip(names, columns, strict=True):
        kind = join_keys[name]
        if kind == ValueType.STRING:
            encoded = values.cast(pa.binary())
            lengths = pc.binary_length(encoded).to_numpy(zero_copy_only=False)
        else:
            numbers = values.to_numpy(zero_copy_only=False)
            if numbers.dtype.kind not in "iu":
                return _keys_by_feast(batch, join_keys, version)
            fixed = numbers.astype(widths[kind])
            encoded = _slices(
                fixed.view(np.uint8).reshape(n, fixed.itemsize), np.full(n, fixed.itemsize)
            )
            lengths = np.full(n, fixed.itemsize)
        # the value's type and length, 4 little-endian bytes each
        prefix = np.empty((n, 2), dtype="<u4")
        prefix[:, 0] = kind.value
        prefix[:, 1] = lengths
        parts += [_slices(prefix.view(np.uint8).reshape(n, 8), np.full(n, 8)), encoded]
    return pc.binary_join_element_wise(*parts, _EMPTY)


def _keys_by_feast(batch, join_keys: dict[str, ValueType], version: int) -> list[bytes]:
    """Feast's own key conversion and serialization, row by row."""
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.type_map import python_values_to_proto_values

    protos = [
        python_values_to_proto_values(batch.column(k).to_numpy(zero_copy_only=False), kind)
        for k, kind in join_keys.items()
    ]
    return pa.array(
        [
            serialize_entity_key(
                EntityKey(join_keys=list(join_keys), entity_values=list(values)),
                entity_key_serialization_version=version,
            )
            for values in zip(*protos, strict=True)
        ],
        pa.binary(),
    )
