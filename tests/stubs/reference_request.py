"""Print the reference SubmitRequest's wire bytes as hex, from the Python stubs.

scripts/check-stubs compares this with what the Go, Java and C++ smoke
programs (and the TS one) print for the same message: every language's stubs
must put the same bytes on the wire.
"""

from google.protobuf.duration_pb2 import Duration
from stepping.tm.v1 import tm_pb2


def main() -> None:
    req = tm_pb2.SubmitRequest(
        gid="g-1",
        steps=[
            tm_pb2.Step(
                name="s1",
                action=tm_pb2.Endpoint(target="127.0.0.1:1", method="/x.v1.Y/Z"),
                payload=b"\x01\x02",
                headers={"k": "v"},
                timeout=Duration(seconds=3),
            )
        ],
        options=tm_pb2.TransactionOptions(mode=tm_pb2.MODE_SAGA),
        wait_result=True,
    )
    print(req.SerializeToString(deterministic=True).hex())


if __name__ == "__main__":
    main()
