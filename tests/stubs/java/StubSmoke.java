// Stub smoke test for gen/java (scripts/check-stubs compiles and runs it):
// builds the reference SubmitRequest and prints its wire bytes as hex.
import com.google.protobuf.ByteString;
import com.google.protobuf.Duration;
import io.grpc.stub.StreamObserver;
import io.stepping.participant.v1.ParticipantServiceGrpc;
import io.stepping.participant.v1.PreparedOutcome;
import io.stepping.participant.v1.QueryPreparedRequest;
import io.stepping.participant.v1.QueryPreparedResponse;
import io.stepping.tm.v1.Endpoint;
import io.stepping.tm.v1.Mode;
import io.stepping.tm.v1.Step;
import io.stepping.tm.v1.SubmitRequest;
import io.stepping.tm.v1.TransactionManagerServiceGrpc;
import io.stepping.tm.v1.TransactionOptions;

public final class StubSmoke {
  /** Shows that a Java service can implement QueryPrepared. */
  static final class Participant extends ParticipantServiceGrpc.ParticipantServiceImplBase {
    @Override
    public void queryPrepared(
        QueryPreparedRequest request, StreamObserver<QueryPreparedResponse> observer) {
      observer.onNext(
          QueryPreparedResponse.newBuilder()
              .setOutcome(PreparedOutcome.PREPARED_OUTCOME_COMMITTED)
              .build());
      observer.onCompleted();
    }
  }

  public static void main(String[] args) {
    SubmitRequest req =
        SubmitRequest.newBuilder()
            .setGid("g-1")
            .addSteps(
                Step.newBuilder()
                    .setName("s1")
                    .setAction(
                        Endpoint.newBuilder().setTarget("127.0.0.1:1").setMethod("/x.v1.Y/Z"))
                    .setPayload(ByteString.copyFrom(new byte[] {1, 2}))
                    .putHeaders("k", "v")
                    .setTimeout(Duration.newBuilder().setSeconds(3)))
            .setOptions(TransactionOptions.newBuilder().setMode(Mode.MODE_SAGA))
            .setWaitResult(true)
            .build();
    new Participant().bindService();
    if (!TransactionManagerServiceGrpc.getServiceDescriptor()
        .getName()
        .equals("stepping.tm.v1.TransactionManagerService")) {
      throw new AssertionError("unexpected service name");
    }
    StringBuilder hex = new StringBuilder();
    for (byte b : req.toByteArray()) {
      hex.append(String.format("%02x", b));
    }
    System.out.println(hex);
  }
}
