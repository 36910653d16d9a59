"""Payload codecs: each kind round-trips, bad bytes fail as PayloadDecodeError."""

from __future__ import annotations

import datetime
import decimal
import enum
from dataclasses import dataclass, field
from typing import Any

import pydantic
import pytest
from stepping.tm.v1 import tm_pb2

from participant_sdk._codec import PayloadDecodeError, codec_for, encode_value


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclass
class Line:
    sku: str
    quantity: int


@dataclass
class Order:
    id: str
    lines: list[Line]
    color: Color
    placed: datetime.datetime
    price: decimal.Decimal
    note: str | None = None
    tags: dict[str, int] = field(default_factory=dict)


class Invoice(pydantic.BaseModel):
    number: int
    customer: str


def test_dataclass_round_trip_with_nested_types() -> None:
    order = Order(
        id="o1",
        lines=[Line("a", 1), Line("b", 2)],
        color=Color.BLUE,
        placed=datetime.datetime(2025, 1, 2, 3, 4, 5, tzinfo=datetime.UTC),
        price=decimal.Decimal("12.30"),
        tags={"x": 1},
    )
    codec = codec_for(Order)
    data = codec.encode(order)
    assert data == encode_value(order)
    assert data.startswith(b'{"id": "o1"')  # JSON on the wire
    assert codec.decode(data) == order


def test_dataclass_ignores_unknown_keys_and_rejects_wrong_types() -> None:
    codec = codec_for(Line)
    assert codec.decode(b'{"sku": "a", "quantity": 3, "new_field": true}') == Line("a", 3)
    with pytest.raises(PayloadDecodeError, match="Line"):
        codec.decode(b'{"sku": 1, "quantity": 3}')
    with pytest.raises(PayloadDecodeError):
        codec.decode(b'{"sku": "a"}')  # missing field
    with pytest.raises(PayloadDecodeError):
        codec.decode(b"not json")


def test_protobuf_round_trip() -> None:
    msg = tm_pb2.Endpoint(target="h:1", method="/a.B/C")
    codec = codec_for(tm_pb2.Endpoint)
    data = codec.encode(msg)
    assert data == msg.SerializeToString() == encode_value(msg)
    assert codec.decode(data) == msg
    with pytest.raises(PayloadDecodeError, match=r"stepping\.tm\.v1\.Endpoint"):
        codec.decode(b"\xff\xff\xff")


def test_pydantic_round_trip() -> None:
    invoice = Invoice(number=7, customer="ann")
    codec = codec_for(Invoice)
    data = codec.encode(invoice)
    assert data == encode_value(invoice) == b'{"number":7,"customer":"ann"}'
    assert codec.decode(data) == invoice
    with pytest.raises(PayloadDecodeError):
        codec.decode(b'{"number": "x"}')


@pytest.mark.parametrize("annotation", [bytes, Any])
def test_bytes_pass_through(annotation: Any) -> None:
    codec = codec_for(annotation)
    assert codec.decode(b"\x00\x01") == b"\x00\x01"
    assert codec.encode(b"\x00\x01") == b"\x00\x01"
    assert encode_value(bytearray(b"ab")) == b"ab"


def test_none_is_empty() -> None:
    assert codec_for(None).encode(None) == b""
    assert codec_for(type(None)).decode(b"") is None
    assert encode_value(None) == b""


def test_json_able_plain_values_travel_as_json() -> None:
    assert encode_value({"a": 1, "b": [True, None]}) == b'{"a": 1, "b": [true, null]}'
    assert codec_for(dict).decode(b'{"a": 1}') == {"a": 1}
    assert codec_for(dict[str, int]).decode(encode_value({"n": 2})) == {"n": 2}
    assert codec_for(list[str]).decode(encode_value(["x", "y"])) == ["x", "y"]
    assert codec_for(int).decode(encode_value(42)) == 42
    assert codec_for(str).decode(encode_value("hé")) == "hé"
    with pytest.raises(PayloadDecodeError):
        codec_for(dict[str, int]).decode(b'{"n": "two"}')
    with pytest.raises(PayloadDecodeError):
        codec_for(dict).decode(b"[1]")
    with pytest.raises(TypeError, match="not JSON-able"):
        encode_value({"f": object()})


def test_unsupported_types_are_refused() -> None:
    with pytest.raises(TypeError, match="unsupported payload type"):
        codec_for(set)
    with pytest.raises(TypeError, match="unsupported payload"):
        encode_value({1, 2})
    with pytest.raises(TypeError, match="expected bytes"):
        codec_for(bytes).encode("text")
