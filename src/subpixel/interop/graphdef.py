"""A minimal reader of TensorFlow ``GraphDef`` files (frozen ``.pb`` graphs), no protobuf needed.

Only what importing a frozen inference graph needs is decoded: each ``NodeDef``'s name, op,
inputs and attributes, where an attribute is a string, int, float, bool, data type, shape,
list of those, or a constant tensor (``TensorProto``, decoded to a numpy array). The protobuf
wire format is read directly: varints, 64-bit, length-delimited and 32-bit fields, with the
field numbers of TensorFlow's ``graph.proto``, ``node_def.proto``, ``attr_value.proto``,
``tensor.proto`` and ``tensor_shape.proto``. Unknown fields are skipped, as protobuf does.

Example:
    >>> import numpy as np
    >>> from subpixel.interop.graphdef import encode_const_node, parse_graphdef
    >>> data = encode_const_node("w", np.arange(6, dtype=np.float32).reshape(2, 3))
    >>> (node,) = parse_graphdef(data)
    >>> node.name, node.op, node.attr["value"].tolist()
    ('w', 'Const', [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]])
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "GraphDefError",
    "NodeDef",
    "encode_const_node",
    "load_graphdef",
    "parse_graphdef",
]

# TensorFlow DataType enum (types.proto) -> numpy dtype, for the types a weight can have.
_DTYPES: dict[int, np.dtype[Any]] = {
    1: np.dtype("<f4"),  # DT_FLOAT
    2: np.dtype("<f8"),  # DT_DOUBLE
    3: np.dtype("<i4"),  # DT_INT32
    4: np.dtype("u1"),  # DT_UINT8
    5: np.dtype("<i2"),  # DT_INT16
    6: np.dtype("i1"),  # DT_INT8
    9: np.dtype("<i8"),  # DT_INT64
    10: np.dtype("?"),  # DT_BOOL
    19: np.dtype("<f2"),  # DT_HALF
}

_MAX_FILE = 2 * 1024**3  # protobuf's own limit for one message


class GraphDefError(ValueError):
    """A file that is not a readable TensorFlow GraphDef."""


@dataclass
class NodeDef:
    """One graph node: ``name``, ``op``, ``inputs`` and decoded ``attr`` values.

    Attribute values are Python objects: ``str`` (``s``, decoded as UTF-8 when possible,
    else ``bytes``), ``int``, ``float``, ``bool``, a :class:`DType` for ``type``, a ``tuple``
    of dims for ``shape`` (``None`` for unknown rank, ``-1`` for an unknown size), a numpy
    array for ``tensor``, or a ``list`` of these for ``list``.
    """

    name: str
    op: str
    inputs: list[str] = field(default_factory=list)
    attr: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DType:
    """A TensorFlow data type enum value (``AttrValue.type``)."""

    value: int


# --- wire format ------------------------------------------------------------------------------


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= len(buf):
            raise GraphDefError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise GraphDefError("varint longer than 10 bytes")


def _fields(buf: bytes) -> Iterator[tuple[int, int, Any]]:
    """Yield ``(field number, wire type, value)``; length-delimited values are bytes."""
    pos = 0
    end = len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise GraphDefError("field number 0")
        value: int | bytes
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            if pos + 8 > end:
                raise GraphDefError("truncated 64-bit field")
            value = buf[pos : pos + 8]
            pos += 8
        elif wire == 2:
            size, pos = _varint(buf, pos)
            if pos + size > end:
                raise GraphDefError(f"truncated field {number}: {size} bytes announced")
            value = buf[pos : pos + size]
            pos += size
        elif wire == 5:
            if pos + 4 > end:
                raise GraphDefError("truncated 32-bit field")
            value = buf[pos : pos + 4]
            pos += 4
        else:
            raise GraphDefError(f"unsupported wire type {wire} (field {number})")
        yield number, wire, value


def _signed64(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def _packed_varints(wire: int, value: Any) -> list[int]:
    """A repeated integer field, packed (bytes) or not (one varint)."""
    if wire == 0:
        return [_signed64(value)]
    out: list[int] = []
    pos = 0
    while pos < len(value):
        v, pos = _varint(value, pos)
        out.append(_signed64(v))
    return out


def _packed_fixed(wire: int, value: bytes, fmt: str, size: int) -> list[Any]:
    """A repeated fixed-width field (float, double), packed or one element."""
    if wire == 2 and len(value) % size:
        raise GraphDefError("packed field length is not a multiple of its element size")
    return list(struct.unpack(f"<{len(value) // size}{fmt}", value))


def _text(b: bytes) -> str:
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise GraphDefError("a name is not valid UTF-8") from exc


def _maybe_text(b: bytes) -> str | bytes:
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        return b


# --- messages ---------------------------------------------------------------------------------


def _shape(buf: bytes) -> tuple[int, ...] | None:
    """TensorShapeProto: ``dim`` = 2 (``size`` = 1), ``unknown_rank`` = 3."""
    dims: list[int] = []
    for number, _, value in _fields(buf):
        if number == 2:
            size = 0
            for n2, _, v2 in _fields(value):
                if n2 == 1:
                    size = _signed64(v2)
            dims.append(size)
        elif number == 3 and value:
            return None
    return tuple(dims)


def _tensor(buf: bytes) -> np.ndarray:
    """TensorProto -> numpy array (``tensor_content`` or the typed ``*_val`` fields)."""
    dtype_id = 0
    shape: tuple[int, ...] | None = ()
    content: bytes | None = None
    values: list[Any] = []
    for number, wire, value in _fields(buf):
        if number == 1:
            dtype_id = value
        elif number == 2:
            shape = _shape(value)
        elif number == 4:
            content = value
        elif number == 5:  # float_val
            values += _packed_fixed(wire, value, "f", 4)
        elif number == 6:  # double_val
            values += _packed_fixed(wire, value, "d", 8)
        elif number in (7, 10, 11, 13):  # int_val, int64_val, bool_val, half_val (as bits)
            values += _packed_varints(wire, value)
    if dtype_id not in _DTYPES:
        raise GraphDefError(f"constant tensor of unsupported TensorFlow dtype {dtype_id}")
    dtype = _DTYPES[dtype_id]
    if shape is None or any(d < 0 for d in shape):
        raise GraphDefError(f"constant tensor with unknown shape {shape}")
    count = int(np.prod(shape, dtype=np.int64))
    if content is not None:
        if len(content) != count * dtype.itemsize:
            raise GraphDefError(
                f"tensor_content has {len(content)} bytes, shape {shape} needs "
                f"{count * dtype.itemsize}"
            )
        return np.frombuffer(content, dtype=dtype).reshape(shape).copy()
    if dtype_id == 19:  # half_val holds the bit patterns as int32
        arr = np.array(values, dtype=np.uint16).view(np.float16)
    else:
        arr = np.array(values, dtype=dtype)
    if arr.size == count:
        return arr.reshape(shape)
    if arr.size == 1 or (arr.size == 0 and count):  # TF repeats the last value
        fill = arr[0] if arr.size else np.zeros((), dtype)
        return np.full(shape, fill, dtype=dtype)
    if arr.size < count:
        return np.concatenate([arr, np.full(count - arr.size, arr[-1], dtype)]).reshape(shape)
    raise GraphDefError(f"constant tensor has {arr.size} values for shape {shape}")


def _list_value(buf: bytes) -> list[Any]:
    """AttrValue.ListValue: s=2, i=3, f=4, b=5, type=6, shape=7, tensor=8."""
    out: list[Any] = []
    for number, wire, value in _fields(buf):
        if number == 2:
            out.append(_maybe_text(value))
        elif number == 3:
            out += _packed_varints(wire, value)
        elif number == 4:
            out += _packed_fixed(wire, value, "f", 4)
        elif number == 5:
            out += [bool(v) for v in _packed_varints(wire, value)]
        elif number == 6:
            out += [DType(v) for v in _packed_varints(wire, value)]
        elif number == 7:
            out.append(_shape(value))
        elif number == 8:
            out.append(_tensor(value))
    return out


def _attr_value(buf: bytes) -> Any:
    """AttrValue: list=1, s=2, i=3, f=4, b=5, type=6, shape=7, tensor=8, placeholder=9."""
    result: Any = None
    for number, _, value in _fields(buf):
        if number == 1:
            result = _list_value(value)
        elif number == 2:
            result = _maybe_text(value)
        elif number == 3:
            result = _signed64(value)
        elif number == 4:
            result = struct.unpack("<f", value)[0]
        elif number == 5:
            result = bool(value)
        elif number == 6:
            result = DType(value)
        elif number == 7:
            result = _shape(value)
        elif number == 8:
            result = _tensor(value)
        elif number == 9:
            result = _text(value)
    return result


def _node(buf: bytes) -> NodeDef:
    """NodeDef: name=1, op=2, input=3, device=4, attr=5 (map entries key=1, value=2)."""
    node = NodeDef("", "")
    for number, _, value in _fields(buf):
        if number == 1:
            node.name = _text(value)
        elif number == 2:
            node.op = _text(value)
        elif number == 3:
            node.inputs.append(_text(value))
        elif number == 5:
            key = ""
            attr: Any = None
            for n2, _, v2 in _fields(value):
                if n2 == 1:
                    key = _text(v2)
                elif n2 == 2:
                    attr = _attr_value(v2)
            node.attr[key] = attr
    return node


def parse_graphdef(data: bytes) -> list[NodeDef]:
    """Decode a serialized ``GraphDef`` into its nodes (``GraphDef.node`` = field 1).

    Raises:
        GraphDefError: the bytes are not a well-formed GraphDef.
    """
    nodes: list[NodeDef] = []
    for number, wire, value in _fields(data):
        if number == 1:
            if wire != 2:
                raise GraphDefError("GraphDef.node is not a message")
            nodes.append(_node(value))
    return nodes


def load_graphdef(path: str | os.PathLike[str]) -> list[NodeDef]:
    """Read the nodes of a frozen TensorFlow graph (``.pb``) file.

    Raises:
        GraphDefError: with the file name, when the file is missing, empty, too big or not
            a GraphDef with at least one node.
    """
    p = Path(path)
    if not p.is_file():
        raise GraphDefError(f"{p}: no such file")
    size = p.stat().st_size
    if size == 0 or size > _MAX_FILE:
        raise GraphDefError(f"{p}: not a TensorFlow GraphDef ({size} bytes)")
    try:
        nodes = parse_graphdef(p.read_bytes())
    except GraphDefError as exc:
        raise GraphDefError(f"{p}: not a readable TensorFlow GraphDef ({exc})") from None
    if not nodes or any(not n.name or not n.op for n in nodes):
        raise GraphDefError(f"{p}: not a TensorFlow GraphDef (no named nodes found)")
    return nodes


# --- writing (for tests and examples) ---------------------------------------------------------


def _enc_varint(v: int) -> bytes:
    if v < 0:
        v += 1 << 64
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _enc_field(number: int, payload: bytes | int) -> bytes:
    if isinstance(payload, int):
        return _enc_varint(number << 3) + _enc_varint(payload)
    return _enc_varint(number << 3 | 2) + _enc_varint(len(payload)) + payload


def _enc_tensor(arr: np.ndarray) -> bytes:
    inverse = {v: k for k, v in _DTYPES.items()}
    dt = arr.dtype.newbyteorder("<") if arr.dtype.byteorder == ">" else arr.dtype
    if np.dtype(dt) not in inverse:
        raise ValueError(f"cannot encode dtype {arr.dtype}")
    shape = b"".join(_enc_field(2, _enc_field(1, int(d))) for d in arr.shape)
    return (
        _enc_field(1, inverse[np.dtype(dt)])
        + _enc_field(2, shape)
        + _enc_field(4, np.ascontiguousarray(arr, dtype=dt).tobytes())
    )


def encode_const_node(name: str, value: np.ndarray, inputs: tuple[str, ...] = ()) -> bytes:
    """Serialize one ``Const`` node holding ``value`` as a one-node GraphDef (for tests).

    Parsing its output with :func:`parse_graphdef` gives the node back; concatenating the
    results of several calls gives a GraphDef with several nodes (protobuf appends repeated
    fields).
    """
    attr_entry = _enc_field(1, b"value") + _enc_field(2, _enc_field(8, _enc_tensor(value)))
    node = _enc_field(1, name.encode()) + _enc_field(2, b"Const")
    for i in inputs:
        node += _enc_field(3, i.encode())
    node += _enc_field(5, attr_entry)
    return _enc_field(1, node)
