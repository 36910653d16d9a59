"""Payload codecs: how a step's typed argument and result travel as raw bytes.

The kind is taken from a type annotation (server side) or from a value's type (client
side): a protobuf message travels in its wire format, a dataclass or a pydantic model as
UTF-8 JSON, JSON-able plain values (``dict``, ``list``, ``str``, ``int``, ``float``,
``bool``, and their generic forms such as ``dict[str, int]``) as UTF-8 JSON too,
``bytes`` verbatim, ``None`` as empty bytes.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import inspect
import json
import types
import typing
import uuid
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import DecodeError, Message

__all__ = ["Codec", "PayloadDecodeError", "codec_for", "encode_value"]


class PayloadDecodeError(ValueError):
    """The bytes do not decode into the expected type (never fixed by retrying)."""


@dataclass(frozen=True, slots=True)
class Codec:
    """Encodes values of one type to bytes and back."""

    type: Any
    encode: typing.Callable[[Any], bytes]
    decode: typing.Callable[[bytes], Any]


def _is_pydantic_model(tp: Any) -> bool:
    # Duck-typed so that pydantic stays an optional dependency.
    return isinstance(tp, type) and callable(getattr(tp, "model_validate_json", None))


def codec_for(tp: Any) -> Codec:
    """The codec of an annotation; ``bytes``, ``Any`` or no annotation mean raw bytes."""
    if tp is None or tp is type(None):
        return Codec(None, lambda _v: b"", lambda _b: None)
    if isinstance(tp, type) and issubclass(tp, Message):
        return Codec(tp, _encode_message, lambda b: _decode_message(tp, b))
    if _is_pydantic_model(tp):
        return Codec(tp, _encode_pydantic, lambda b: _decode_pydantic(tp, b))
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return Codec(tp, _encode_dataclass, lambda b: _decode_dataclass(tp, b))
    if tp in (bytes, Any, inspect.Parameter.empty):
        return Codec(bytes, _encode_bytes, bytes)
    if tp in _JSON_TYPES or typing.get_origin(tp) in (dict, list):
        return Codec(tp, _encode_json, lambda b: _decode_json(tp, b))
    raise TypeError(
        f"unsupported payload type {tp!r}: use a protobuf message, a dataclass, "
        "a pydantic model, a JSON-able dict/list/str/int/float/bool, bytes or None"
    )


def encode_value(value: object) -> bytes:
    """Encodes a value by its runtime type (the client side of :func:`codec_for`)."""
    if value is None:
        return b""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, Message):
        return _encode_message(value)
    if _is_pydantic_model(type(value)):
        return _encode_pydantic(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _encode_dataclass(value)
    if isinstance(value, _JSON_TYPES):
        return _encode_json(value)
    raise TypeError(
        f"unsupported payload {type(value).__name__}: use a protobuf message, a dataclass, "
        "a pydantic model, a JSON-able dict/list/str/int/float/bool, bytes or None"
    )


# Plain values that travel as JSON (``bool`` is an ``int``, listed for the annotation).
_JSON_TYPES = (dict, list, str, int, float, bool)


def _encode_json(value: Any) -> bytes:
    try:
        return json.dumps(value, default=_json_default).encode()
    except (TypeError, ValueError) as exc:
        raise TypeError(f"payload is not JSON-able: {exc}") from exc


def _decode_json(tp: Any, data: bytes) -> Any:
    try:
        return _from_json(tp, json.loads(data))
    except (ValueError, TypeError, KeyError) as exc:
        raise PayloadDecodeError(f"not a valid {tp}: {exc}") from exc


def _encode_bytes(value: Any) -> bytes:
    if value is None:
        return b""
    if not isinstance(value, bytes | bytearray | memoryview):
        raise TypeError(f"expected bytes, got {type(value).__name__}")
    return bytes(value)


def _encode_message(value: Any) -> bytes:
    return bytes(value.SerializeToString())


def _decode_message(tp: type[Message], data: bytes) -> Message:
    try:
        return tp.FromString(data)
    except DecodeError as exc:
        raise PayloadDecodeError(f"not a valid {tp.DESCRIPTOR.full_name}: {exc}") from exc


def _encode_pydantic(value: Any) -> bytes:
    return str(value.model_dump_json()).encode()


def _decode_pydantic(tp: Any, data: bytes) -> Any:
    try:
        return tp.model_validate_json(data)
    except ValueError as exc:  # pydantic.ValidationError is a ValueError
        raise PayloadDecodeError(f"not a valid {tp.__name__}: {exc}") from exc


# -- dataclasses as JSON ------------------------------------------------------------


def _json_default(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _encode_dataclass(value: Any) -> bytes:
    return json.dumps(dataclasses.asdict(value), default=_json_default).encode()


def _decode_dataclass(tp: Any, data: bytes) -> Any:
    try:
        return _from_json(tp, json.loads(data))
    except (ValueError, TypeError, KeyError) as exc:
        raise PayloadDecodeError(f"not a valid {tp.__name__}: {exc}") from exc


def _from_json(tp: Any, obj: Any) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return obj
    if origin in (typing.Union, types.UnionType):
        if obj is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _from_json(arg, obj)
            except (ValueError, TypeError, KeyError):
                continue
        raise ValueError(f"{obj!r} matches no type of {tp}")
    if origin in (list, tuple, set, frozenset):
        if not isinstance(obj, list):
            raise TypeError(f"expected a JSON array for {tp}, got {type(obj).__name__}")
        item = args[0] if args else Any
        return origin(_from_json(item, v) for v in obj)
    if tp in (dict, list) and not isinstance(obj, tp):
        raise TypeError(f"expected a JSON {'object' if tp is dict else 'array'}")
    if origin is dict:
        if not isinstance(obj, dict):
            raise TypeError(f"expected a JSON object for {tp}")
        value_tp = args[1] if len(args) == 2 else Any
        return {k: _from_json(value_tp, v) for k, v in obj.items()}
    if origin is typing.Literal:
        if obj not in args:
            raise ValueError(f"{obj!r} is not one of {args}")
        return obj
    if isinstance(tp, type):
        return _from_json_class(tp, obj)
    return obj


def _from_json_class(tp: type, obj: Any) -> Any:
    if dataclasses.is_dataclass(tp):
        if not isinstance(obj, dict):
            raise TypeError(f"expected a JSON object for {tp.__name__}")
        hints = typing.get_type_hints(tp)
        # Unknown keys are ignored so that a newer producer can add fields.
        kwargs = {
            f.name: _from_json(hints.get(f.name, Any), obj[f.name])
            for f in dataclasses.fields(tp)
            if f.init and f.name in obj
        }
        return tp(**kwargs)
    if issubclass(tp, enum.Enum):
        return tp(obj)
    if tp is datetime.datetime:
        return datetime.datetime.fromisoformat(obj)
    if tp is datetime.date:
        return datetime.date.fromisoformat(obj)
    if tp in (decimal.Decimal, uuid.UUID):
        return tp(obj)
    if tp is bytes:
        return bytes.fromhex(obj)
    if tp is float and isinstance(obj, int | float) and not isinstance(obj, bool):
        return float(obj)
    if tp in (str, int, bool) and type(obj) is not tp:
        raise TypeError(f"expected {tp.__name__}, got {type(obj).__name__}")
    return obj
