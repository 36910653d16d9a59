// Hand-written entry point (not generated): re-exports the generated modules.
export * as tmv1 from "./stepping/tm/v1/tm_pb.js";
export * as participantv1 from "./stepping/participant/v1/participant_pb.js";
