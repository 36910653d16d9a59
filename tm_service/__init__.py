"""Stepping TM: a transaction manager that runs multi-step jobs over gRPC to completion."""

from stepping.contract import VERSION

from tm_service.config import Settings
from tm_service.server import TmServer

__all__ = ["Settings", "TmServer"]
__version__ = VERSION
