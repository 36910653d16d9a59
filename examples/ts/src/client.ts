// A Stepping TM client in TypeScript: submits one job of two steps, a
// TypeScript step (the inventory participant in participant.ts) and a Python
// step (any Python SDK participant), and waits for its result.
//
// It talks to the TM through the stubs protoc-gen-es generated into gen/ts and
// @connectrpc/connect's gRPC transport (HTTP/2 without TLS, like the TM).
//
//   node dist/examples/ts/src/client.js --tm 127.0.0.1:36790 \
//     --inventory 127.0.0.1:50070 --shipping 127.0.0.1:50071 \
//     --shipping-method /shipping.v1.Shipping/Ship --sku widget --quantity 2
//
// Prints the finished job as JSON; exits 0 when it SUCCEEDED, 3 when it ended
// otherwise, 1 on an error.

import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { parseArgs } from "node:util";
import {
  Mode,
  StepSchema,
  StepStatus,
  TransactionManagerService,
  TransactionStatus,
  type Transaction,
} from "../../../gen/ts/src/stepping/tm/v1/tm_pb.js";

const json = (value: unknown) => new TextEncoder().encode(JSON.stringify(value));

function summary(tx: Transaction) {
  return {
    gid: tx.gid,
    status: TransactionStatus[tx.status],
    error: tx.error,
    steps: tx.steps.map((s) => ({
      index: s.index,
      name: s.name,
      status: StepStatus[s.status],
      attempts: s.attempts,
      lastError: s.lastError,
      result: new TextDecoder().decode(s.result),
    })),
  };
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      tm: { type: "string", default: "127.0.0.1:36790" },
      inventory: { type: "string" },
      shipping: { type: "string" },
      "shipping-method": { type: "string", default: "/shipping.v1.Shipping/Ship" },
      sku: { type: "string", default: "widget" },
      quantity: { type: "string", default: "1" },
      "order-id": { type: "string", default: `order-${Date.now()}` },
      address: { type: "string", default: "1 Example Street" },
      "wait-seconds": { type: "string", default: "20" },
    },
  });
  if (!values.inventory || !values.shipping) {
    console.error("--inventory and --shipping (host:port) are required");
    return 1;
  }
  const transport = createGrpcTransport({ baseUrl: `http://${values.tm}` });
  const tm = createClient(TransactionManagerService, transport);

  const { gid } = await tm.newGid({});
  const orderId = values["order-id"]!;
  const steps = [
    create(StepSchema, {
      name: "reserve-stock",
      action: { target: values.inventory, method: "/inventory.v1.Inventory/Reserve" },
      compensation: { target: values.inventory, method: "/inventory.v1.Inventory/Reserve" },
      payload: json({ sku: values.sku, quantity: Number(values.quantity), orderId }),
    }),
    create(StepSchema, {
      name: "ship",
      action: { target: values.shipping, method: values["shipping-method"]! },
      // A Python SDK step taking a dataclass reads its fields from JSON.
      payload: json({ order_id: orderId, address: values.address }),
      headers: { "x-client": "stepping-example-ts" },
    }),
  ];
  const waitSeconds = BigInt(values["wait-seconds"]!);
  const { transaction } = await tm.submit(
    {
      gid,
      steps,
      options: {
        mode: Mode.SAGA,
        retryPolicy: { initialInterval: { nanos: 200_000_000 }, maximumInterval: { seconds: 2n } },
      },
      waitResult: true,
      waitTimeout: { seconds: waitSeconds },
    },
    { timeoutMs: Number(waitSeconds) * 1000 + 5000 },
  );
  if (!transaction) throw new Error("Submit returned no transaction");
  console.log(JSON.stringify(summary(transaction)));
  return transaction.status === TransactionStatus.SUCCEEDED ? 0 : 3;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    const e = ConnectError.from(err);
    console.error(`error: ${Code[e.code]}: ${e.rawMessage}`);
    process.exit(1);
  },
);
