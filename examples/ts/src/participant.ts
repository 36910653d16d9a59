// A Stepping TM participant in TypeScript: an inventory service whose
// `/inventory.v1.Inventory/Reserve` step the TM calls.
//
// The TM sends a step's stored payload verbatim as the request message and
// never decodes it, so a step is any unary gRPC method; here the payload is
// JSON (what the Python SDK sends for a dataclass), served with @grpc/grpc-js
// generic handlers that pass the raw bytes through.
//
//   node dist/examples/ts/src/participant.js --port 50070 --stock widget=10
//
// Prints one JSON line per event on stdout: {"event":"listening","target":...}
// and, per call, {"event":"reserve", gid, stepIndex, op, attempt, sku, ...}.

import * as grpc from "@grpc/grpc-js";
import { parseArgs } from "node:util";

interface Reservation {
  sku: string;
  quantity: number;
  orderId: string;
}

const identity = (b: Buffer): Buffer => b;

// A generic service definition: raw bytes in, raw bytes out.
const InventoryService: grpc.ServiceDefinition = {
  Reserve: {
    path: "/inventory.v1.Inventory/Reserve",
    requestStream: false,
    responseStream: false,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
  },
};

/** The step metadata the TM sends with every call (see API.md). */
function stepInfo(md: grpc.Metadata) {
  const get = (key: string) => String(md.get(key)[0] ?? "");
  return {
    gid: get("stepping-gid"),
    stepIndex: Number(get("stepping-step-index")),
    stepName: get("stepping-step-name"),
    op: get("stepping-op"),
    attempt: Number(get("stepping-attempt")),
    traceparent: get("traceparent"),
  };
}

export function createInventory(stock: Map<string, number>): grpc.UntypedServiceImplementation {
  // Steps are delivered at least once: remember what each (gid, step, op)
  // answered and answer a repeat the same way without reserving twice. A real
  // service keeps this in its database, in the same transaction as the stock
  // change (the Python SDK's barrier does exactly that).
  const done = new Map<string, Buffer>();
  return {
    Reserve(
      call: grpc.ServerUnaryCall<Buffer, Buffer>,
      callback: grpc.sendUnaryData<Buffer>,
    ): void {
      const info = stepInfo(call.metadata);
      let req: Reservation;
      try {
        req = JSON.parse(call.request.toString("utf8")) as Reservation;
      } catch (err) {
        // A payload that does not parse never will: a business failure.
        callback({ code: grpc.status.ABORTED, details: `bad payload: ${String(err)}` });
        return;
      }
      const key = `${info.gid}/${info.stepIndex}/${info.op}`;
      const previous = done.get(key);
      const log = (outcome: string) =>
        console.log(JSON.stringify({ event: "reserve", ...info, ...req, outcome }));
      if (previous !== undefined) {
        log("duplicate");
        callback(null, previous);
        return;
      }
      const available = stock.get(req.sku) ?? 0;
      if (info.op === "compensate") {
        // The saga's undo: put back what the action took (if it ran at all).
        if (done.has(`${info.gid}/${info.stepIndex}/action`)) {
          stock.set(req.sku, available + req.quantity);
        }
        done.set(key, Buffer.alloc(0));
        log("released");
        callback(null, Buffer.alloc(0));
        return;
      }
      if (req.quantity > available) {
        // ABORTED = business failure: the TM does not retry it.
        log("out-of-stock");
        callback({
          code: grpc.status.ABORTED,
          details: `only ${available} of ${req.sku} left, ${req.quantity} asked`,
        });
        return;
      }
      stock.set(req.sku, available - req.quantity);
      const reply = Buffer.from(
        JSON.stringify({ reservationId: `${req.orderId}-${req.sku}`, left: available - req.quantity }),
      );
      done.set(key, reply);
      log("reserved");
      callback(null, reply);
    },
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      host: { type: "string", default: "127.0.0.1" },
      port: { type: "string", default: "0" },
      stock: { type: "string", multiple: true, default: [] },
    },
  });
  const stock = new Map<string, number>();
  for (const item of values.stock ?? []) {
    const [sku, count] = item.split("=");
    stock.set(sku, Number(count));
  }
  const server = new grpc.Server();
  server.addService(InventoryService, createInventory(stock));
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(
      `${values.host}:${values.port}`,
      grpc.ServerCredentials.createInsecure(),
      (err, bound) => (err ? reject(err) : resolve(bound)),
    ),
  );
  console.log(JSON.stringify({ event: "listening", target: `${values.host}:${port}` }));
  const stop = () => server.tryShutdown(() => process.exit(0));
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
