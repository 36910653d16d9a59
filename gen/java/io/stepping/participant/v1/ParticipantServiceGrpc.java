package io.stepping.participant.v1;

import static io.grpc.MethodDescriptor.generateFullMethodName;

/**
 * <pre>
 * ParticipantService is what a participant serves next to its step endpoints so
 * that the TM can resolve a job whose client crashed between Prepare and Submit.
 * Step endpoints themselves are not declared here: a step is any unary gRPC
 * method, in any language. The step contract the TM follows when calling one:
 * * Request: the step's stored `payload` bytes, sent verbatim as the request
 *   message. The TM never decodes them.
 * * Metadata: `stepping-gid`, `stepping-step-index`, `stepping-step-name`,
 *   `stepping-op` (`action` | `compensate`), `stepping-attempt` (1-based),
 *   `traceparent` / `tracestate` (W3C trace context), plus the step's headers.
 * * Answer codes:
 *   - OK: the step is done; the response bytes are stored as its result.
 *   - ABORTED: business failure; never retried. The job fails (message mode) or
 *     compensates (saga mode).
 *   - FAILED_PRECONDITION: not ready yet; asked again at the base interval.
 *   - anything else (UNAVAILABLE, DEADLINE_EXCEEDED, INTERNAL, ...): retried with
 *     exponential backoff per the retry policy.
 * * Steps are delivered at least once: a participant must be idempotent (the SDK's
 *   barrier makes a step's DB writes happen exactly once).
 * Signed calls. A TM with a signing key (STEPPING_PARTICIPANT_SIGNING_KEY_FILE: the
 * key is the file's bytes, trailing newlines stripped) adds `stepping-signature` to
 * every step, compensation and QueryPrepared call:
 *     stepping-signature: v1=&lt;lower-case hex HMAC-SHA256(key, message)&gt;
 * where `message` is six lines joined by "&#92;n" (0x0A), UTF-8, no trailing newline:
 *     stepping-signature-v1
 *     &lt;stepping-gid&gt;
 *     &lt;stepping-step-index, decimal; empty for QueryPrepared&gt;
 *     &lt;stepping-op: action | compensate | query_prepared&gt;
 *     &lt;stepping-attempt, decimal; empty for QueryPrepared&gt;
 *     &lt;lower-case hex SHA-256 of the request message bytes exactly as received&gt;
 * No field can contain a newline, so the message names one call. To verify,
 * rebuild it from the received metadata and bytes, compute the HMAC and compare
 * in constant time; refuse a missing, malformed or unequal value with
 * UNAUTHENTICATED before running anything. Example (key `secret-key`, gid `g-1`,
 * step 2, `action`, attempt 3, payload `hello`):
 * `v1=868f2db59dffb79888d46e6c1c10daecf9752ed4ee60f7607b0df9bce4949ae1`. The
 * signature does not expire: the same call delivered again carries the same
 * value, which idempotent steps already absorb; use TLS against eavesdroppers.
 * </pre>
 */
@javax.annotation.Generated(
    value = "by gRPC proto compiler",
    comments = "Source: stepping/participant/v1/participant.proto")
@io.grpc.stub.annotations.GrpcGenerated
public final class ParticipantServiceGrpc {

  private ParticipantServiceGrpc() {}

  public static final String SERVICE_NAME = "stepping.participant.v1.ParticipantService";

  // Static method descriptors that strictly reflect the proto.
  private static volatile io.grpc.MethodDescriptor<io.stepping.participant.v1.QueryPreparedRequest,
      io.stepping.participant.v1.QueryPreparedResponse> getQueryPreparedMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "QueryPrepared",
      requestType = io.stepping.participant.v1.QueryPreparedRequest.class,
      responseType = io.stepping.participant.v1.QueryPreparedResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<io.stepping.participant.v1.QueryPreparedRequest,
      io.stepping.participant.v1.QueryPreparedResponse> getQueryPreparedMethod() {
    io.grpc.MethodDescriptor<io.stepping.participant.v1.QueryPreparedRequest, io.stepping.participant.v1.QueryPreparedResponse> getQueryPreparedMethod;
    if ((getQueryPreparedMethod = ParticipantServiceGrpc.getQueryPreparedMethod) == null) {
      synchronized (ParticipantServiceGrpc.class) {
        if ((getQueryPreparedMethod = ParticipantServiceGrpc.getQueryPreparedMethod) == null) {
          ParticipantServiceGrpc.getQueryPreparedMethod = getQueryPreparedMethod =
              io.grpc.MethodDescriptor.<io.stepping.participant.v1.QueryPreparedRequest, io.stepping.participant.v1.QueryPreparedResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "QueryPrepared"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  io.stepping.participant.v1.QueryPreparedRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  io.stepping.participant.v1.QueryPreparedResponse.getDefaultInstance()))
              .setSchemaDescriptor(new ParticipantServiceMethodDescriptorSupplier("QueryPrepared"))
              .build();
        }
      }
    }
    return getQueryPreparedMethod;
  }

  /**
   * Creates a new async stub that supports all call types for the service
   */
  public static ParticipantServiceStub newStub(io.grpc.Channel channel) {
    io.grpc.stub.AbstractStub.StubFactory<ParticipantServiceStub> factory =
      new io.grpc.stub.AbstractStub.StubFactory<ParticipantServiceStub>() {
        @java.lang.Override
        public ParticipantServiceStub newStub(io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
          return new ParticipantServiceStub(channel, callOptions);
        }
      };
    return ParticipantServiceStub.newStub(factory, channel);
  }

  /**
   * Creates a new blocking-style stub that supports unary and streaming output calls on the service
   */
  public static ParticipantServiceBlockingStub newBlockingStub(
      io.grpc.Channel channel) {
    io.grpc.stub.AbstractStub.StubFactory<ParticipantServiceBlockingStub> factory =
      new io.grpc.stub.AbstractStub.StubFactory<ParticipantServiceBlockingStub>() {
        @java.lang.Override
        public ParticipantServiceBlockingStub newStub(io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
          return new ParticipantServiceBlockingStub(channel, callOptions);
        }
      };
    return ParticipantServiceBlockingStub.newStub(factory, channel);
  }

  /**
   * Creates a new ListenableFuture-style stub that supports unary calls on the service
   */
  public static ParticipantServiceFutureStub newFutureStub(
      io.grpc.Channel channel) {
    io.grpc.stub.AbstractStub.StubFactory<ParticipantServiceFutureStub> factory =
      new io.grpc.stub.AbstractStub.StubFactory<ParticipantServiceFutureStub>() {
        @java.lang.Override
        public ParticipantServiceFutureStub newStub(io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
          return new ParticipantServiceFutureStub(channel, callOptions);
        }
      };
    return ParticipantServiceFutureStub.newStub(factory, channel);
  }

  /**
   * <pre>
   * ParticipantService is what a participant serves next to its step endpoints so
   * that the TM can resolve a job whose client crashed between Prepare and Submit.
   * Step endpoints themselves are not declared here: a step is any unary gRPC
   * method, in any language. The step contract the TM follows when calling one:
   * * Request: the step's stored `payload` bytes, sent verbatim as the request
   *   message. The TM never decodes them.
   * * Metadata: `stepping-gid`, `stepping-step-index`, `stepping-step-name`,
   *   `stepping-op` (`action` | `compensate`), `stepping-attempt` (1-based),
   *   `traceparent` / `tracestate` (W3C trace context), plus the step's headers.
   * * Answer codes:
   *   - OK: the step is done; the response bytes are stored as its result.
   *   - ABORTED: business failure; never retried. The job fails (message mode) or
   *     compensates (saga mode).
   *   - FAILED_PRECONDITION: not ready yet; asked again at the base interval.
   *   - anything else (UNAVAILABLE, DEADLINE_EXCEEDED, INTERNAL, ...): retried with
   *     exponential backoff per the retry policy.
   * * Steps are delivered at least once: a participant must be idempotent (the SDK's
   *   barrier makes a step's DB writes happen exactly once).
   * Signed calls. A TM with a signing key (STEPPING_PARTICIPANT_SIGNING_KEY_FILE: the
   * key is the file's bytes, trailing newlines stripped) adds `stepping-signature` to
   * every step, compensation and QueryPrepared call:
   *     stepping-signature: v1=&lt;lower-case hex HMAC-SHA256(key, message)&gt;
   * where `message` is six lines joined by "&#92;n" (0x0A), UTF-8, no trailing newline:
   *     stepping-signature-v1
   *     &lt;stepping-gid&gt;
   *     &lt;stepping-step-index, decimal; empty for QueryPrepared&gt;
   *     &lt;stepping-op: action | compensate | query_prepared&gt;
   *     &lt;stepping-attempt, decimal; empty for QueryPrepared&gt;
   *     &lt;lower-case hex SHA-256 of the request message bytes exactly as received&gt;
   * No field can contain a newline, so the message names one call. To verify,
   * rebuild it from the received metadata and bytes, compute the HMAC and compare
   * in constant time; refuse a missing, malformed or unequal value with
   * UNAUTHENTICATED before running anything. Example (key `secret-key`, gid `g-1`,
   * step 2, `action`, attempt 3, payload `hello`):
   * `v1=868f2db59dffb79888d46e6c1c10daecf9752ed4ee60f7607b0df9bce4949ae1`. The
   * signature does not expire: the same call delivered again carries the same
   * value, which idempotent steps already absorb; use TLS against eavesdroppers.
   * </pre>
   */
  public static abstract class ParticipantServiceImplBase implements io.grpc.BindableService {

    /**
     * <pre>
     * QueryPrepared tells whether the local transaction that prepared `gid`
     * committed. The standard implementation insert-ignores the barrier row
     * (gid, "00", "msg", reason "rollback") and reads back its reason: "msg" means
     * committed, "rollback" means it never will commit. Unreachable or any error
     * status: the TM asks again later. The call carries `stepping-gid`,
     * `stepping-op` = `query_prepared` and, with a signing key, `stepping-signature`
     * (over the serialized QueryPreparedRequest bytes, step index and attempt empty).
     * </pre>
     */
    public void queryPrepared(io.stepping.participant.v1.QueryPreparedRequest request,
        io.grpc.stub.StreamObserver<io.stepping.participant.v1.QueryPreparedResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getQueryPreparedMethod(), responseObserver);
    }

    @java.lang.Override public final io.grpc.ServerServiceDefinition bindService() {
      return io.grpc.ServerServiceDefinition.builder(getServiceDescriptor())
          .addMethod(
            getQueryPreparedMethod(),
            io.grpc.stub.ServerCalls.asyncUnaryCall(
              new MethodHandlers<
                io.stepping.participant.v1.QueryPreparedRequest,
                io.stepping.participant.v1.QueryPreparedResponse>(
                  this, METHODID_QUERY_PREPARED)))
          .build();
    }
  }

  /**
   * <pre>
   * ParticipantService is what a participant serves next to its step endpoints so
   * that the TM can resolve a job whose client crashed between Prepare and Submit.
   * Step endpoints themselves are not declared here: a step is any unary gRPC
   * method, in any language. The step contract the TM follows when calling one:
   * * Request: the step's stored `payload` bytes, sent verbatim as the request
   *   message. The TM never decodes them.
   * * Metadata: `stepping-gid`, `stepping-step-index`, `stepping-step-name`,
   *   `stepping-op` (`action` | `compensate`), `stepping-attempt` (1-based),
   *   `traceparent` / `tracestate` (W3C trace context), plus the step's headers.
   * * Answer codes:
   *   - OK: the step is done; the response bytes are stored as its result.
   *   - ABORTED: business failure; never retried. The job fails (message mode) or
   *     compensates (saga mode).
   *   - FAILED_PRECONDITION: not ready yet; asked again at the base interval.
   *   - anything else (UNAVAILABLE, DEADLINE_EXCEEDED, INTERNAL, ...): retried with
   *     exponential backoff per the retry policy.
   * * Steps are delivered at least once: a participant must be idempotent (the SDK's
   *   barrier makes a step's DB writes happen exactly once).
   * Signed calls. A TM with a signing key (STEPPING_PARTICIPANT_SIGNING_KEY_FILE: the
   * key is the file's bytes, trailing newlines stripped) adds `stepping-signature` to
   * every step, compensation and QueryPrepared call:
   *     stepping-signature: v1=&lt;lower-case hex HMAC-SHA256(key, message)&gt;
   * where `message` is six lines joined by "&#92;n" (0x0A), UTF-8, no trailing newline:
   *     stepping-signature-v1
   *     &lt;stepping-gid&gt;
   *     &lt;stepping-step-index, decimal; empty for QueryPrepared&gt;
   *     &lt;stepping-op: action | compensate | query_prepared&gt;
   *     &lt;stepping-attempt, decimal; empty for QueryPrepared&gt;
   *     &lt;lower-case hex SHA-256 of the request message bytes exactly as received&gt;
   * No field can contain a newline, so the message names one call. To verify,
   * rebuild it from the received metadata and bytes, compute the HMAC and compare
   * in constant time; refuse a missing, malformed or unequal value with
   * UNAUTHENTICATED before running anything. Example (key `secret-key`, gid `g-1`,
   * step 2, `action`, attempt 3, payload `hello`):
   * `v1=868f2db59dffb79888d46e6c1c10daecf9752ed4ee60f7607b0df9bce4949ae1`. The
   * signature does not expire: the same call delivered again carries the same
   * value, which idempotent steps already absorb; use TLS against eavesdroppers.
   * </pre>
   */
  public static final class ParticipantServiceStub extends io.grpc.stub.AbstractAsyncStub<ParticipantServiceStub> {
    private ParticipantServiceStub(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      super(channel, callOptions);
    }

    @java.lang.Override
    protected ParticipantServiceStub build(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      return new ParticipantServiceStub(channel, callOptions);
    }

    /**
     * <pre>
     * QueryPrepared tells whether the local transaction that prepared `gid`
     * committed. The standard implementation insert-ignores the barrier row
     * (gid, "00", "msg", reason "rollback") and reads back its reason: "msg" means
     * committed, "rollback" means it never will commit. Unreachable or any error
     * status: the TM asks again later. The call carries `stepping-gid`,
     * `stepping-op` = `query_prepared` and, with a signing key, `stepping-signature`
     * (over the serialized QueryPreparedRequest bytes, step index and attempt empty).
     * </pre>
     */
    public void queryPrepared(io.stepping.participant.v1.QueryPreparedRequest request,
        io.grpc.stub.StreamObserver<io.stepping.participant.v1.QueryPreparedResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getQueryPreparedMethod(), getCallOptions()), request, responseObserver);
    }
  }

  /**
   * <pre>
   * ParticipantService is what a participant serves next to its step endpoints so
   * that the TM can resolve a job whose client crashed between Prepare and Submit.
   * Step endpoints themselves are not declared here: a step is any unary gRPC
   * method, in any language. The step contract the TM follows when calling one:
   * * Request: the step's stored `payload` bytes, sent verbatim as the request
   *   message. The TM never decodes them.
   * * Metadata: `stepping-gid`, `stepping-step-index`, `stepping-step-name`,
   *   `stepping-op` (`action` | `compensate`), `stepping-attempt` (1-based),
   *   `traceparent` / `tracestate` (W3C trace context), plus the step's headers.
   * * Answer codes:
   *   - OK: the step is done; the response bytes are stored as its result.
   *   - ABORTED: business failure; never retried. The job fails (message mode) or
   *     compensates (saga mode).
   *   - FAILED_PRECONDITION: not ready yet; asked again at the base interval.
   *   - anything else (UNAVAILABLE, DEADLINE_EXCEEDED, INTERNAL, ...): retried with
   *     exponential backoff per the retry policy.
   * * Steps are delivered at least once: a participant must be idempotent (the SDK's
   *   barrier makes a step's DB writes happen exactly once).
   * Signed calls. A TM with a signing key (STEPPING_PARTICIPANT_SIGNING_KEY_FILE: the
   * key is the file's bytes, trailing newlines stripped) adds `stepping-signature` to
   * every step, compensation and QueryPrepared call:
   *     stepping-signature: v1=&lt;lower-case hex HMAC-SHA256(key, message)&gt;
   * where `message` is six lines joined by "&#92;n" (0x0A), UTF-8, no trailing newline:
   *     stepping-signature-v1
   *     &lt;stepping-gid&gt;
   *     &lt;stepping-step-index, decimal; empty for QueryPrepared&gt;
   *     &lt;stepping-op: action | compensate | query_prepared&gt;
   *     &lt;stepping-attempt, decimal; empty for QueryPrepared&gt;
   *     &lt;lower-case hex SHA-256 of the request message bytes exactly as received&gt;
   * No field can contain a newline, so the message names one call. To verify,
   * rebuild it from the received metadata and bytes, compute the HMAC and compare
   * in constant time; refuse a missing, malformed or unequal value with
   * UNAUTHENTICATED before running anything. Example (key `secret-key`, gid `g-1`,
   * step 2, `action`, attempt 3, payload `hello`):
   * `v1=868f2db59dffb79888d46e6c1c10daecf9752ed4ee60f7607b0df9bce4949ae1`. The
   * signature does not expire: the same call delivered again carries the same
   * value, which idempotent steps already absorb; use TLS against eavesdroppers.
   * </pre>
   */
  public static final class ParticipantServiceBlockingStub extends io.grpc.stub.AbstractBlockingStub<ParticipantServiceBlockingStub> {
    private ParticipantServiceBlockingStub(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      super(channel, callOptions);
    }

    @java.lang.Override
    protected ParticipantServiceBlockingStub build(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      return new ParticipantServiceBlockingStub(channel, callOptions);
    }

    /**
     * <pre>
     * QueryPrepared tells whether the local transaction that prepared `gid`
     * committed. The standard implementation insert-ignores the barrier row
     * (gid, "00", "msg", reason "rollback") and reads back its reason: "msg" means
     * committed, "rollback" means it never will commit. Unreachable or any error
     * status: the TM asks again later. The call carries `stepping-gid`,
     * `stepping-op` = `query_prepared` and, with a signing key, `stepping-signature`
     * (over the serialized QueryPreparedRequest bytes, step index and attempt empty).
     * </pre>
     */
    public io.stepping.participant.v1.QueryPreparedResponse queryPrepared(io.stepping.participant.v1.QueryPreparedRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getQueryPreparedMethod(), getCallOptions(), request);
    }
  }

  /**
   * <pre>
   * ParticipantService is what a participant serves next to its step endpoints so
   * that the TM can resolve a job whose client crashed between Prepare and Submit.
   * Step endpoints themselves are not declared here: a step is any unary gRPC
   * method, in any language. The step contract the TM follows when calling one:
   * * Request: the step's stored `payload` bytes, sent verbatim as the request
   *   message. The TM never decodes them.
   * * Metadata: `stepping-gid`, `stepping-step-index`, `stepping-step-name`,
   *   `stepping-op` (`action` | `compensate`), `stepping-attempt` (1-based),
   *   `traceparent` / `tracestate` (W3C trace context), plus the step's headers.
   * * Answer codes:
   *   - OK: the step is done; the response bytes are stored as its result.
   *   - ABORTED: business failure; never retried. The job fails (message mode) or
   *     compensates (saga mode).
   *   - FAILED_PRECONDITION: not ready yet; asked again at the base interval.
   *   - anything else (UNAVAILABLE, DEADLINE_EXCEEDED, INTERNAL, ...): retried with
   *     exponential backoff per the retry policy.
   * * Steps are delivered at least once: a participant must be idempotent (the SDK's
   *   barrier makes a step's DB writes happen exactly once).
   * Signed calls. A TM with a signing key (STEPPING_PARTICIPANT_SIGNING_KEY_FILE: the
   * key is the file's bytes, trailing newlines stripped) adds `stepping-signature` to
   * every step, compensation and QueryPrepared call:
   *     stepping-signature: v1=&lt;lower-case hex HMAC-SHA256(key, message)&gt;
   * where `message` is six lines joined by "&#92;n" (0x0A), UTF-8, no trailing newline:
   *     stepping-signature-v1
   *     &lt;stepping-gid&gt;
   *     &lt;stepping-step-index, decimal; empty for QueryPrepared&gt;
   *     &lt;stepping-op: action | compensate | query_prepared&gt;
   *     &lt;stepping-attempt, decimal; empty for QueryPrepared&gt;
   *     &lt;lower-case hex SHA-256 of the request message bytes exactly as received&gt;
   * No field can contain a newline, so the message names one call. To verify,
   * rebuild it from the received metadata and bytes, compute the HMAC and compare
   * in constant time; refuse a missing, malformed or unequal value with
   * UNAUTHENTICATED before running anything. Example (key `secret-key`, gid `g-1`,
   * step 2, `action`, attempt 3, payload `hello`):
   * `v1=868f2db59dffb79888d46e6c1c10daecf9752ed4ee60f7607b0df9bce4949ae1`. The
   * signature does not expire: the same call delivered again carries the same
   * value, which idempotent steps already absorb; use TLS against eavesdroppers.
   * </pre>
   */
  public static final class ParticipantServiceFutureStub extends io.grpc.stub.AbstractFutureStub<ParticipantServiceFutureStub> {
    private ParticipantServiceFutureStub(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      super(channel, callOptions);
    }

    @java.lang.Override
    protected ParticipantServiceFutureStub build(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      return new ParticipantServiceFutureStub(channel, callOptions);
    }

    /**
     * <pre>
     * QueryPrepared tells whether the local transaction that prepared `gid`
     * committed. The standard implementation insert-ignores the barrier row
     * (gid, "00", "msg", reason "rollback") and reads back its reason: "msg" means
     * committed, "rollback" means it never will commit. Unreachable or any error
     * status: the TM asks again later. The call carries `stepping-gid`,
     * `stepping-op` = `query_prepared` and, with a signing key, `stepping-signature`
     * (over the serialized QueryPreparedRequest bytes, step index and attempt empty).
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<io.stepping.participant.v1.QueryPreparedResponse> queryPrepared(
        io.stepping.participant.v1.QueryPreparedRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getQueryPreparedMethod(), getCallOptions()), request);
    }
  }

  private static final int METHODID_QUERY_PREPARED = 0;

  private static final class MethodHandlers<Req, Resp> implements
      io.grpc.stub.ServerCalls.UnaryMethod<Req, Resp>,
      io.grpc.stub.ServerCalls.ServerStreamingMethod<Req, Resp>,
      io.grpc.stub.ServerCalls.ClientStreamingMethod<Req, Resp>,
      io.grpc.stub.ServerCalls.BidiStreamingMethod<Req, Resp> {
    private final ParticipantServiceImplBase serviceImpl;
    private final int methodId;

    MethodHandlers(ParticipantServiceImplBase serviceImpl, int methodId) {
      this.serviceImpl = serviceImpl;
      this.methodId = methodId;
    }

    @java.lang.Override
    @java.lang.SuppressWarnings("unchecked")
    public void invoke(Req request, io.grpc.stub.StreamObserver<Resp> responseObserver) {
      switch (methodId) {
        case METHODID_QUERY_PREPARED:
          serviceImpl.queryPrepared((io.stepping.participant.v1.QueryPreparedRequest) request,
              (io.grpc.stub.StreamObserver<io.stepping.participant.v1.QueryPreparedResponse>) responseObserver);
          break;
        default:
          throw new AssertionError();
      }
    }

    @java.lang.Override
    @java.lang.SuppressWarnings("unchecked")
    public io.grpc.stub.StreamObserver<Req> invoke(
        io.grpc.stub.StreamObserver<Resp> responseObserver) {
      switch (methodId) {
        default:
          throw new AssertionError();
      }
    }
  }

  private static abstract class ParticipantServiceBaseDescriptorSupplier
      implements io.grpc.protobuf.ProtoFileDescriptorSupplier, io.grpc.protobuf.ProtoServiceDescriptorSupplier {
    ParticipantServiceBaseDescriptorSupplier() {}

    @java.lang.Override
    public com.google.protobuf.Descriptors.FileDescriptor getFileDescriptor() {
      return io.stepping.participant.v1.Participant.getDescriptor();
    }

    @java.lang.Override
    public com.google.protobuf.Descriptors.ServiceDescriptor getServiceDescriptor() {
      return getFileDescriptor().findServiceByName("ParticipantService");
    }
  }

  private static final class ParticipantServiceFileDescriptorSupplier
      extends ParticipantServiceBaseDescriptorSupplier {
    ParticipantServiceFileDescriptorSupplier() {}
  }

  private static final class ParticipantServiceMethodDescriptorSupplier
      extends ParticipantServiceBaseDescriptorSupplier
      implements io.grpc.protobuf.ProtoMethodDescriptorSupplier {
    private final String methodName;

    ParticipantServiceMethodDescriptorSupplier(String methodName) {
      this.methodName = methodName;
    }

    @java.lang.Override
    public com.google.protobuf.Descriptors.MethodDescriptor getMethodDescriptor() {
      return getServiceDescriptor().findMethodByName(methodName);
    }
  }

  private static volatile io.grpc.ServiceDescriptor serviceDescriptor;

  public static io.grpc.ServiceDescriptor getServiceDescriptor() {
    io.grpc.ServiceDescriptor result = serviceDescriptor;
    if (result == null) {
      synchronized (ParticipantServiceGrpc.class) {
        result = serviceDescriptor;
        if (result == null) {
          serviceDescriptor = result = io.grpc.ServiceDescriptor.newBuilder(SERVICE_NAME)
              .setSchemaDescriptor(new ParticipantServiceFileDescriptorSupplier())
              .addMethod(getQueryPreparedMethod())
              .build();
        }
      }
    }
    return result;
  }
}
