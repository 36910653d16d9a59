// Stub smoke test for gen/cpp (scripts/check-stubs compiles, links and runs
// it): builds the reference SubmitRequest and prints its wire bytes as hex.
#include <cstdio>
#include <string>

#include "stepping/participant/v1/participant.grpc.pb.h"
#include "stepping/tm/v1/tm.grpc.pb.h"
#include "stepping/tm/v1/tm.pb.h"

namespace {
// Shows that a C++ service can implement QueryPrepared.
class Participant final : public stepping::participant::v1::ParticipantService::Service {
  grpc::Status QueryPrepared(grpc::ServerContext*,
                             const stepping::participant::v1::QueryPreparedRequest*,
                             stepping::participant::v1::QueryPreparedResponse* resp) override {
    resp->set_outcome(stepping::participant::v1::PREPARED_OUTCOME_COMMITTED);
    return grpc::Status::OK;
  }
};
}  // namespace

int main() {
  stepping::tm::v1::SubmitRequest req;
  req.set_gid("g-1");
  auto* step = req.add_steps();
  step->set_name("s1");
  step->mutable_action()->set_target("127.0.0.1:1");
  step->mutable_action()->set_method("/x.v1.Y/Z");
  step->set_payload(std::string("\x01\x02", 2));
  (*step->mutable_headers())["k"] = "v";
  step->mutable_timeout()->set_seconds(3);
  req.mutable_options()->set_mode(stepping::tm::v1::MODE_SAGA);
  req.set_wait_result(true);
  Participant participant;
  std::string bytes;
  if (!req.SerializeToString(&bytes)) return 1;
  for (unsigned char c : bytes) std::printf("%02x", c);
  std::printf("\n");
  return 0;
}
