// Stub smoke test for gen/ts (scripts/check-stubs compiles and runs it):
// builds the reference SubmitRequest and prints its wire bytes as hex, for
// comparison with the other languages' stubs.
import { create, toBinary } from "@bufbuild/protobuf";
import { ParticipantService } from "../src/stepping/participant/v1/participant_pb.js";
import {
  Mode,
  SubmitRequestSchema,
  TransactionManagerService,
} from "../src/stepping/tm/v1/tm_pb.js";

const req = create(SubmitRequestSchema, {
  gid: "g-1",
  steps: [
    {
      name: "s1",
      action: { target: "127.0.0.1:1", method: "/x.v1.Y/Z" },
      payload: new Uint8Array([1, 2]),
      headers: { k: "v" },
      timeout: { seconds: 3n },
    },
  ],
  options: { mode: Mode.SAGA },
  waitResult: true,
});

if (TransactionManagerService.typeName !== "stepping.tm.v1.TransactionManagerService") {
  throw new Error(`unexpected service name ${TransactionManagerService.typeName}`);
}
if (ParticipantService.method.queryPrepared.name !== "QueryPrepared") {
  throw new Error("ParticipantService.QueryPrepared missing");
}
console.log(Buffer.from(toBinary(SubmitRequestSchema, req)).toString("hex"));
