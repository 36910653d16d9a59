"""The gRPC API of the TM: servicer, request conversion and the error mapping."""

from tm_service.api._convert import Converter, transaction_to_proto
from tm_service.api._errors import DOMAIN, to_status
from tm_service.api._malformed import MalformedRequests
from tm_service.api._service import TransactionManagerServicer

__all__ = [
    "DOMAIN",
    "Converter",
    "MalformedRequests",
    "TransactionManagerServicer",
    "to_status",
    "transaction_to_proto",
]
