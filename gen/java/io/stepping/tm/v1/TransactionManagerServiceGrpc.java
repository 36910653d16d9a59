package io.stepping.tm.v1;

import static io.grpc.MethodDescriptor.generateFullMethodName;

/**
 * <pre>
 * TransactionManagerService stores jobs (global transactions) of ordered steps
 * and calls each step's gRPC endpoint until the job completes.
 * Every RPC is idempotent on `gid`: repeating a request returns the current
 * state. A conflicting request fails with ALREADY_EXISTS or FAILED_PRECONDITION
 * and a google.rpc.ErrorInfo detail (domain "stepping.tm.v1") whose `reason` is
 * an ErrorReason name and whose metadata holds "gid" and, where relevant,
 * "status" (the job's current TransactionStatus name). Bad input fails with
 * INVALID_ARGUMENT and a google.rpc.BadRequest detail naming the field; nothing
 * is stored then.
 * </pre>
 */
@javax.annotation.Generated(
    value = "by gRPC proto compiler",
    comments = "Source: stepping/tm/v1/tm.proto")
@io.grpc.stub.annotations.GrpcGenerated
public final class TransactionManagerServiceGrpc {

  private TransactionManagerServiceGrpc() {}

  public static final String SERVICE_NAME = "stepping.tm.v1.TransactionManagerService";

  // Static method descriptors that strictly reflect the proto.
  private static volatile io.grpc.MethodDescriptor<io.stepping.tm.v1.NewGidRequest,
      io.stepping.tm.v1.NewGidResponse> getNewGidMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "NewGid",
      requestType = io.stepping.tm.v1.NewGidRequest.class,
      responseType = io.stepping.tm.v1.NewGidResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<io.stepping.tm.v1.NewGidRequest,
      io.stepping.tm.v1.NewGidResponse> getNewGidMethod() {
    io.grpc.MethodDescriptor<io.stepping.tm.v1.NewGidRequest, io.stepping.tm.v1.NewGidResponse> getNewGidMethod;
    if ((getNewGidMethod = TransactionManagerServiceGrpc.getNewGidMethod) == null) {
      synchronized (TransactionManagerServiceGrpc.class) {
        if ((getNewGidMethod = TransactionManagerServiceGrpc.getNewGidMethod) == null) {
          TransactionManagerServiceGrpc.getNewGidMethod = getNewGidMethod =
              io.grpc.MethodDescriptor.<io.stepping.tm.v1.NewGidRequest, io.stepping.tm.v1.NewGidResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "NewGid"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  io.stepping.tm.v1.NewGidRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  io.stepping.tm.v1.NewGidResponse.getDefaultInstance()))
              .setSchemaDescriptor(new TransactionManagerServiceMethodDescriptorSupplier("NewGid"))
              .build();
        }
      }
    }
    return getNewGidMethod;
  }

  private static volatile io.grpc.MethodDescriptor<io.stepping.tm.v1.PrepareRequest,
      io.stepping.tm.v1.PrepareResponse> getPrepareMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "Prepare",
      requestType = io.stepping.tm.v1.PrepareRequest.class,
      responseType = io.stepping.tm.v1.PrepareResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<io.stepping.tm.v1.PrepareRequest,
      io.stepping.tm.v1.PrepareResponse> getPrepareMethod() {
    io.grpc.MethodDescriptor<io.stepping.tm.v1.PrepareRequest, io.stepping.tm.v1.PrepareResponse> getPrepareMethod;
    if ((getPrepareMethod = TransactionManagerServiceGrpc.getPrepareMethod) == null) {
      synchronized (TransactionManagerServiceGrpc.class) {
        if ((getPrepareMethod = TransactionManagerServiceGrpc.getPrepareMethod) == null) {
          TransactionManagerServiceGrpc.getPrepareMethod = getPrepareMethod =
              io.grpc.MethodDescriptor.<io.stepping.tm.v1.PrepareRequest, io.stepping.tm.v1.PrepareResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "Prepare"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  io.stepping.tm.v1.PrepareRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  io.stepping.tm.v1.PrepareResponse.getDefaultInstance()))
              .setSchemaDescriptor(new TransactionManagerServiceMethodDescriptorSupplier("Prepare"))
              .build();
        }
      }
    }
    return getPrepareMethod;
  }

  private static volatile io.grpc.MethodDescriptor<io.stepping.tm.v1.SubmitRequest,
      io.stepping.tm.v1.SubmitResponse> getSubmitMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "Submit",
      requestType = io.stepping.tm.v1.SubmitRequest.class,
      responseType = io.stepping.tm.v1.SubmitResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<io.stepping.tm.v1.SubmitRequest,
      io.stepping.tm.v1.SubmitResponse> getSubmitMethod() {
    io.grpc.MethodDescriptor<io.stepping.tm.v1.SubmitRequest, io.stepping.tm.v1.SubmitResponse> getSubmitMethod;
    if ((getSubmitMethod = TransactionManagerServiceGrpc.getSubmitMethod) == null) {
      synchronized (TransactionManagerServiceGrpc.class) {
        if ((getSubmitMethod = TransactionManagerServiceGrpc.getSubmitMethod) == null) {
          TransactionManagerServiceGrpc.getSubmitMethod = getSubmitMethod =
              io.grpc.MethodDescriptor.<io.stepping.tm.v1.SubmitRequest, io.stepping.tm.v1.SubmitResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "Submit"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  io.stepping.tm.v1.SubmitRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  io.stepping.tm.v1.SubmitResponse.getDefaultInstance()))
              .setSchemaDescriptor(new TransactionManagerServiceMethodDescriptorSupplier("Submit"))
              .build();
        }
      }
    }
    return getSubmitMethod;
  }

  private static volatile io.grpc.MethodDescriptor<io.stepping.tm.v1.AbortRequest,
      io.stepping.tm.v1.AbortResponse> getAbortMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "Abort",
      requestType = io.stepping.tm.v1.AbortRequest.class,
      responseType = io.stepping.tm.v1.AbortResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<io.stepping.tm.v1.AbortRequest,
      io.stepping.tm.v1.AbortResponse> getAbortMethod() {
    io.grpc.MethodDescriptor<io.stepping.tm.v1.AbortRequest, io.stepping.tm.v1.AbortResponse> getAbortMethod;
    if ((getAbortMethod = TransactionManagerServiceGrpc.getAbortMethod) == null) {
      synchronized (TransactionManagerServiceGrpc.class) {
        if ((getAbortMethod = TransactionManagerServiceGrpc.getAbortMethod) == null) {
          TransactionManagerServiceGrpc.getAbortMethod = getAbortMethod =
              io.grpc.MethodDescriptor.<io.stepping.tm.v1.AbortRequest, io.stepping.tm.v1.AbortResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "Abort"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  io.stepping.tm.v1.AbortRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  io.stepping.tm.v1.AbortResponse.getDefaultInstance()))
              .setSchemaDescriptor(new TransactionManagerServiceMethodDescriptorSupplier("Abort"))
              .build();
        }
      }
    }
    return getAbortMethod;
  }

  private static volatile io.grpc.MethodDescriptor<io.stepping.tm.v1.GetTransactionRequest,
      io.stepping.tm.v1.GetTransactionResponse> getGetTransactionMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "GetTransaction",
      requestType = io.stepping.tm.v1.GetTransactionRequest.class,
      responseType = io.stepping.tm.v1.GetTransactionResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<io.stepping.tm.v1.GetTransactionRequest,
      io.stepping.tm.v1.GetTransactionResponse> getGetTransactionMethod() {
    io.grpc.MethodDescriptor<io.stepping.tm.v1.GetTransactionRequest, io.stepping.tm.v1.GetTransactionResponse> getGetTransactionMethod;
    if ((getGetTransactionMethod = TransactionManagerServiceGrpc.getGetTransactionMethod) == null) {
      synchronized (TransactionManagerServiceGrpc.class) {
        if ((getGetTransactionMethod = TransactionManagerServiceGrpc.getGetTransactionMethod) == null) {
          TransactionManagerServiceGrpc.getGetTransactionMethod = getGetTransactionMethod =
              io.grpc.MethodDescriptor.<io.stepping.tm.v1.GetTransactionRequest, io.stepping.tm.v1.GetTransactionResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "GetTransaction"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  io.stepping.tm.v1.GetTransactionRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  io.stepping.tm.v1.GetTransactionResponse.getDefaultInstance()))
              .setSchemaDescriptor(new TransactionManagerServiceMethodDescriptorSupplier("GetTransaction"))
              .build();
        }
      }
    }
    return getGetTransactionMethod;
  }

  private static volatile io.grpc.MethodDescriptor<io.stepping.tm.v1.ListTransactionsRequest,
      io.stepping.tm.v1.ListTransactionsResponse> getListTransactionsMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "ListTransactions",
      requestType = io.stepping.tm.v1.ListTransactionsRequest.class,
      responseType = io.stepping.tm.v1.ListTransactionsResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<io.stepping.tm.v1.ListTransactionsRequest,
      io.stepping.tm.v1.ListTransactionsResponse> getListTransactionsMethod() {
    io.grpc.MethodDescriptor<io.stepping.tm.v1.ListTransactionsRequest, io.stepping.tm.v1.ListTransactionsResponse> getListTransactionsMethod;
    if ((getListTransactionsMethod = TransactionManagerServiceGrpc.getListTransactionsMethod) == null) {
      synchronized (TransactionManagerServiceGrpc.class) {
        if ((getListTransactionsMethod = TransactionManagerServiceGrpc.getListTransactionsMethod) == null) {
          TransactionManagerServiceGrpc.getListTransactionsMethod = getListTransactionsMethod =
              io.grpc.MethodDescriptor.<io.stepping.tm.v1.ListTransactionsRequest, io.stepping.tm.v1.ListTransactionsResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "ListTransactions"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  io.stepping.tm.v1.ListTransactionsRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  io.stepping.tm.v1.ListTransactionsResponse.getDefaultInstance()))
              .setSchemaDescriptor(new TransactionManagerServiceMethodDescriptorSupplier("ListTransactions"))
              .build();
        }
      }
    }
    return getListTransactionsMethod;
  }

  private static volatile io.grpc.MethodDescriptor<io.stepping.tm.v1.CancelRequest,
      io.stepping.tm.v1.CancelResponse> getCancelMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "Cancel",
      requestType = io.stepping.tm.v1.CancelRequest.class,
      responseType = io.stepping.tm.v1.CancelResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<io.stepping.tm.v1.CancelRequest,
      io.stepping.tm.v1.CancelResponse> getCancelMethod() {
    io.grpc.MethodDescriptor<io.stepping.tm.v1.CancelRequest, io.stepping.tm.v1.CancelResponse> getCancelMethod;
    if ((getCancelMethod = TransactionManagerServiceGrpc.getCancelMethod) == null) {
      synchronized (TransactionManagerServiceGrpc.class) {
        if ((getCancelMethod = TransactionManagerServiceGrpc.getCancelMethod) == null) {
          TransactionManagerServiceGrpc.getCancelMethod = getCancelMethod =
              io.grpc.MethodDescriptor.<io.stepping.tm.v1.CancelRequest, io.stepping.tm.v1.CancelResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "Cancel"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  io.stepping.tm.v1.CancelRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  io.stepping.tm.v1.CancelResponse.getDefaultInstance()))
              .setSchemaDescriptor(new TransactionManagerServiceMethodDescriptorSupplier("Cancel"))
              .build();
        }
      }
    }
    return getCancelMethod;
  }

  private static volatile io.grpc.MethodDescriptor<io.stepping.tm.v1.ResumeRequest,
      io.stepping.tm.v1.ResumeResponse> getResumeMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "Resume",
      requestType = io.stepping.tm.v1.ResumeRequest.class,
      responseType = io.stepping.tm.v1.ResumeResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<io.stepping.tm.v1.ResumeRequest,
      io.stepping.tm.v1.ResumeResponse> getResumeMethod() {
    io.grpc.MethodDescriptor<io.stepping.tm.v1.ResumeRequest, io.stepping.tm.v1.ResumeResponse> getResumeMethod;
    if ((getResumeMethod = TransactionManagerServiceGrpc.getResumeMethod) == null) {
      synchronized (TransactionManagerServiceGrpc.class) {
        if ((getResumeMethod = TransactionManagerServiceGrpc.getResumeMethod) == null) {
          TransactionManagerServiceGrpc.getResumeMethod = getResumeMethod =
              io.grpc.MethodDescriptor.<io.stepping.tm.v1.ResumeRequest, io.stepping.tm.v1.ResumeResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "Resume"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  io.stepping.tm.v1.ResumeRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  io.stepping.tm.v1.ResumeResponse.getDefaultInstance()))
              .setSchemaDescriptor(new TransactionManagerServiceMethodDescriptorSupplier("Resume"))
              .build();
        }
      }
    }
    return getResumeMethod;
  }

  private static volatile io.grpc.MethodDescriptor<io.stepping.tm.v1.CountTransactionsRequest,
      io.stepping.tm.v1.CountTransactionsResponse> getCountTransactionsMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "CountTransactions",
      requestType = io.stepping.tm.v1.CountTransactionsRequest.class,
      responseType = io.stepping.tm.v1.CountTransactionsResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<io.stepping.tm.v1.CountTransactionsRequest,
      io.stepping.tm.v1.CountTransactionsResponse> getCountTransactionsMethod() {
    io.grpc.MethodDescriptor<io.stepping.tm.v1.CountTransactionsRequest, io.stepping.tm.v1.CountTransactionsResponse> getCountTransactionsMethod;
    if ((getCountTransactionsMethod = TransactionManagerServiceGrpc.getCountTransactionsMethod) == null) {
      synchronized (TransactionManagerServiceGrpc.class) {
        if ((getCountTransactionsMethod = TransactionManagerServiceGrpc.getCountTransactionsMethod) == null) {
          TransactionManagerServiceGrpc.getCountTransactionsMethod = getCountTransactionsMethod =
              io.grpc.MethodDescriptor.<io.stepping.tm.v1.CountTransactionsRequest, io.stepping.tm.v1.CountTransactionsResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "CountTransactions"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  io.stepping.tm.v1.CountTransactionsRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  io.stepping.tm.v1.CountTransactionsResponse.getDefaultInstance()))
              .setSchemaDescriptor(new TransactionManagerServiceMethodDescriptorSupplier("CountTransactions"))
              .build();
        }
      }
    }
    return getCountTransactionsMethod;
  }

  private static volatile io.grpc.MethodDescriptor<io.stepping.tm.v1.WatchTransactionRequest,
      io.stepping.tm.v1.WatchTransactionResponse> getWatchTransactionMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "WatchTransaction",
      requestType = io.stepping.tm.v1.WatchTransactionRequest.class,
      responseType = io.stepping.tm.v1.WatchTransactionResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.SERVER_STREAMING)
  public static io.grpc.MethodDescriptor<io.stepping.tm.v1.WatchTransactionRequest,
      io.stepping.tm.v1.WatchTransactionResponse> getWatchTransactionMethod() {
    io.grpc.MethodDescriptor<io.stepping.tm.v1.WatchTransactionRequest, io.stepping.tm.v1.WatchTransactionResponse> getWatchTransactionMethod;
    if ((getWatchTransactionMethod = TransactionManagerServiceGrpc.getWatchTransactionMethod) == null) {
      synchronized (TransactionManagerServiceGrpc.class) {
        if ((getWatchTransactionMethod = TransactionManagerServiceGrpc.getWatchTransactionMethod) == null) {
          TransactionManagerServiceGrpc.getWatchTransactionMethod = getWatchTransactionMethod =
              io.grpc.MethodDescriptor.<io.stepping.tm.v1.WatchTransactionRequest, io.stepping.tm.v1.WatchTransactionResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.SERVER_STREAMING)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "WatchTransaction"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  io.stepping.tm.v1.WatchTransactionRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  io.stepping.tm.v1.WatchTransactionResponse.getDefaultInstance()))
              .setSchemaDescriptor(new TransactionManagerServiceMethodDescriptorSupplier("WatchTransaction"))
              .build();
        }
      }
    }
    return getWatchTransactionMethod;
  }

  private static volatile io.grpc.MethodDescriptor<io.stepping.tm.v1.PurgeTransactionsRequest,
      io.stepping.tm.v1.PurgeTransactionsResponse> getPurgeTransactionsMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "PurgeTransactions",
      requestType = io.stepping.tm.v1.PurgeTransactionsRequest.class,
      responseType = io.stepping.tm.v1.PurgeTransactionsResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<io.stepping.tm.v1.PurgeTransactionsRequest,
      io.stepping.tm.v1.PurgeTransactionsResponse> getPurgeTransactionsMethod() {
    io.grpc.MethodDescriptor<io.stepping.tm.v1.PurgeTransactionsRequest, io.stepping.tm.v1.PurgeTransactionsResponse> getPurgeTransactionsMethod;
    if ((getPurgeTransactionsMethod = TransactionManagerServiceGrpc.getPurgeTransactionsMethod) == null) {
      synchronized (TransactionManagerServiceGrpc.class) {
        if ((getPurgeTransactionsMethod = TransactionManagerServiceGrpc.getPurgeTransactionsMethod) == null) {
          TransactionManagerServiceGrpc.getPurgeTransactionsMethod = getPurgeTransactionsMethod =
              io.grpc.MethodDescriptor.<io.stepping.tm.v1.PurgeTransactionsRequest, io.stepping.tm.v1.PurgeTransactionsResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "PurgeTransactions"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  io.stepping.tm.v1.PurgeTransactionsRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  io.stepping.tm.v1.PurgeTransactionsResponse.getDefaultInstance()))
              .setSchemaDescriptor(new TransactionManagerServiceMethodDescriptorSupplier("PurgeTransactions"))
              .build();
        }
      }
    }
    return getPurgeTransactionsMethod;
  }

  /**
   * Creates a new async stub that supports all call types for the service
   */
  public static TransactionManagerServiceStub newStub(io.grpc.Channel channel) {
    io.grpc.stub.AbstractStub.StubFactory<TransactionManagerServiceStub> factory =
      new io.grpc.stub.AbstractStub.StubFactory<TransactionManagerServiceStub>() {
        @java.lang.Override
        public TransactionManagerServiceStub newStub(io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
          return new TransactionManagerServiceStub(channel, callOptions);
        }
      };
    return TransactionManagerServiceStub.newStub(factory, channel);
  }

  /**
   * Creates a new blocking-style stub that supports unary and streaming output calls on the service
   */
  public static TransactionManagerServiceBlockingStub newBlockingStub(
      io.grpc.Channel channel) {
    io.grpc.stub.AbstractStub.StubFactory<TransactionManagerServiceBlockingStub> factory =
      new io.grpc.stub.AbstractStub.StubFactory<TransactionManagerServiceBlockingStub>() {
        @java.lang.Override
        public TransactionManagerServiceBlockingStub newStub(io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
          return new TransactionManagerServiceBlockingStub(channel, callOptions);
        }
      };
    return TransactionManagerServiceBlockingStub.newStub(factory, channel);
  }

  /**
   * Creates a new ListenableFuture-style stub that supports unary calls on the service
   */
  public static TransactionManagerServiceFutureStub newFutureStub(
      io.grpc.Channel channel) {
    io.grpc.stub.AbstractStub.StubFactory<TransactionManagerServiceFutureStub> factory =
      new io.grpc.stub.AbstractStub.StubFactory<TransactionManagerServiceFutureStub>() {
        @java.lang.Override
        public TransactionManagerServiceFutureStub newStub(io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
          return new TransactionManagerServiceFutureStub(channel, callOptions);
        }
      };
    return TransactionManagerServiceFutureStub.newStub(factory, channel);
  }

  /**
   * <pre>
   * TransactionManagerService stores jobs (global transactions) of ordered steps
   * and calls each step's gRPC endpoint until the job completes.
   * Every RPC is idempotent on `gid`: repeating a request returns the current
   * state. A conflicting request fails with ALREADY_EXISTS or FAILED_PRECONDITION
   * and a google.rpc.ErrorInfo detail (domain "stepping.tm.v1") whose `reason` is
   * an ErrorReason name and whose metadata holds "gid" and, where relevant,
   * "status" (the job's current TransactionStatus name). Bad input fails with
   * INVALID_ARGUMENT and a google.rpc.BadRequest detail naming the field; nothing
   * is stored then.
   * </pre>
   */
  public static abstract class TransactionManagerServiceImplBase implements io.grpc.BindableService {

    /**
     * <pre>
     * NewGid returns a fresh, unique global transaction id.
     * </pre>
     */
    public void newGid(io.stepping.tm.v1.NewGidRequest request,
        io.grpc.stub.StreamObserver<io.stepping.tm.v1.NewGidResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getNewGidMethod(), responseObserver);
    }

    /**
     * <pre>
     * Prepare stores a job as PREPARED (phase one of the 2-phase message). Its steps
     * run only after Submit, or after the QueryPrepared back-check says the
     * client's local transaction committed.
     * </pre>
     */
    public void prepare(io.stepping.tm.v1.PrepareRequest request,
        io.grpc.stub.StreamObserver<io.stepping.tm.v1.PrepareResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getPrepareMethod(), responseObserver);
    }

    /**
     * <pre>
     * Submit starts a prepared job, or stores and starts a new one given its steps.
     * </pre>
     */
    public void submit(io.stepping.tm.v1.SubmitRequest request,
        io.grpc.stub.StreamObserver<io.stepping.tm.v1.SubmitResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getSubmitMethod(), responseObserver);
    }

    /**
     * <pre>
     * Abort ends a prepared job without running any step.
     * </pre>
     */
    public void abort(io.stepping.tm.v1.AbortRequest request,
        io.grpc.stub.StreamObserver<io.stepping.tm.v1.AbortResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getAbortMethod(), responseObserver);
    }

    /**
     * <pre>
     * GetTransaction returns a job and its steps.
     * </pre>
     */
    public void getTransaction(io.stepping.tm.v1.GetTransactionRequest request,
        io.grpc.stub.StreamObserver<io.stepping.tm.v1.GetTransactionResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getGetTransactionMethod(), responseObserver);
    }

    /**
     * <pre>
     * ListTransactions pages through jobs, newest first.
     * </pre>
     */
    public void listTransactions(io.stepping.tm.v1.ListTransactionsRequest request,
        io.grpc.stub.StreamObserver<io.stepping.tm.v1.ListTransactionsResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getListTransactionsMethod(), responseObserver);
    }

    /**
     * <pre>
     * Cancel stops a job: PREPARED -&gt; ABORTED (as Abort); a SUBMITTED message job
     * -&gt; FAILED with the reason (no further step is called); a SUBMITTED saga -&gt;
     * COMPENSATING -&gt; FAILED (done steps compensated); a finished job is returned
     * unchanged. Idempotent. A replica running the job notices within a poll when it
     * waits for a retry; a call in flight may finish there and its result is recorded.
     * </pre>
     */
    public void cancel(io.stepping.tm.v1.CancelRequest request,
        io.grpc.stub.StreamObserver<io.stepping.tm.v1.CancelResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getCancelMethod(), responseObserver);
    }

    /**
     * <pre>
     * Resume runs a FAILED message job (or a saga that failed before anything was
     * compensated) again from its first step that did not succeed, with fresh
     * attempts; steps that succeeded are not called again. Idempotent.
     * </pre>
     */
    public void resume(io.stepping.tm.v1.ResumeRequest request,
        io.grpc.stub.StreamObserver<io.stepping.tm.v1.ResumeResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getResumeMethod(), responseObserver);
    }

    /**
     * <pre>
     * CountTransactions counts the jobs matching a filter, per status.
     * </pre>
     */
    public void countTransactions(io.stepping.tm.v1.CountTransactionsRequest request,
        io.grpc.stub.StreamObserver<io.stepping.tm.v1.CountTransactionsResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getCountTransactionsMethod(), responseObserver);
    }

    /**
     * <pre>
     * WatchTransaction streams a job's state: first as it is, then after every
     * change, until it is final (the last message) or the call ends.
     * </pre>
     */
    public void watchTransaction(io.stepping.tm.v1.WatchTransactionRequest request,
        io.grpc.stub.StreamObserver<io.stepping.tm.v1.WatchTransactionResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getWatchTransactionMethod(), responseObserver);
    }

    /**
     * <pre>
     * PurgeTransactions deletes finished jobs older than a limit (admin only).
     * </pre>
     */
    public void purgeTransactions(io.stepping.tm.v1.PurgeTransactionsRequest request,
        io.grpc.stub.StreamObserver<io.stepping.tm.v1.PurgeTransactionsResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getPurgeTransactionsMethod(), responseObserver);
    }

    @java.lang.Override public final io.grpc.ServerServiceDefinition bindService() {
      return io.grpc.ServerServiceDefinition.builder(getServiceDescriptor())
          .addMethod(
            getNewGidMethod(),
            io.grpc.stub.ServerCalls.asyncUnaryCall(
              new MethodHandlers<
                io.stepping.tm.v1.NewGidRequest,
                io.stepping.tm.v1.NewGidResponse>(
                  this, METHODID_NEW_GID)))
          .addMethod(
            getPrepareMethod(),
            io.grpc.stub.ServerCalls.asyncUnaryCall(
              new MethodHandlers<
                io.stepping.tm.v1.PrepareRequest,
                io.stepping.tm.v1.PrepareResponse>(
                  this, METHODID_PREPARE)))
          .addMethod(
            getSubmitMethod(),
            io.grpc.stub.ServerCalls.asyncUnaryCall(
              new MethodHandlers<
                io.stepping.tm.v1.SubmitRequest,
                io.stepping.tm.v1.SubmitResponse>(
                  this, METHODID_SUBMIT)))
          .addMethod(
            getAbortMethod(),
            io.grpc.stub.ServerCalls.asyncUnaryCall(
              new MethodHandlers<
                io.stepping.tm.v1.AbortRequest,
                io.stepping.tm.v1.AbortResponse>(
                  this, METHODID_ABORT)))
          .addMethod(
            getGetTransactionMethod(),
            io.grpc.stub.ServerCalls.asyncUnaryCall(
              new MethodHandlers<
                io.stepping.tm.v1.GetTransactionRequest,
                io.stepping.tm.v1.GetTransactionResponse>(
                  this, METHODID_GET_TRANSACTION)))
          .addMethod(
            getListTransactionsMethod(),
            io.grpc.stub.ServerCalls.asyncUnaryCall(
              new MethodHandlers<
                io.stepping.tm.v1.ListTransactionsRequest,
                io.stepping.tm.v1.ListTransactionsResponse>(
                  this, METHODID_LIST_TRANSACTIONS)))
          .addMethod(
            getCancelMethod(),
            io.grpc.stub.ServerCalls.asyncUnaryCall(
              new MethodHandlers<
                io.stepping.tm.v1.CancelRequest,
                io.stepping.tm.v1.CancelResponse>(
                  this, METHODID_CANCEL)))
          .addMethod(
            getResumeMethod(),
            io.grpc.stub.ServerCalls.asyncUnaryCall(
              new MethodHandlers<
                io.stepping.tm.v1.ResumeRequest,
                io.stepping.tm.v1.ResumeResponse>(
                  this, METHODID_RESUME)))
          .addMethod(
            getCountTransactionsMethod(),
            io.grpc.stub.ServerCalls.asyncUnaryCall(
              new MethodHandlers<
                io.stepping.tm.v1.CountTransactionsRequest,
                io.stepping.tm.v1.CountTransactionsResponse>(
                  this, METHODID_COUNT_TRANSACTIONS)))
          .addMethod(
            getWatchTransactionMethod(),
            io.grpc.stub.ServerCalls.asyncServerStreamingCall(
              new MethodHandlers<
                io.stepping.tm.v1.WatchTransactionRequest,
                io.stepping.tm.v1.WatchTransactionResponse>(
                  this, METHODID_WATCH_TRANSACTION)))
          .addMethod(
            getPurgeTransactionsMethod(),
            io.grpc.stub.ServerCalls.asyncUnaryCall(
              new MethodHandlers<
                io.stepping.tm.v1.PurgeTransactionsRequest,
                io.stepping.tm.v1.PurgeTransactionsResponse>(
                  this, METHODID_PURGE_TRANSACTIONS)))
          .build();
    }
  }

  /**
   * <pre>
   * TransactionManagerService stores jobs (global transactions) of ordered steps
   * and calls each step's gRPC endpoint until the job completes.
   * Every RPC is idempotent on `gid`: repeating a request returns the current
   * state. A conflicting request fails with ALREADY_EXISTS or FAILED_PRECONDITION
   * and a google.rpc.ErrorInfo detail (domain "stepping.tm.v1") whose `reason` is
   * an ErrorReason name and whose metadata holds "gid" and, where relevant,
   * "status" (the job's current TransactionStatus name). Bad input fails with
   * INVALID_ARGUMENT and a google.rpc.BadRequest detail naming the field; nothing
   * is stored then.
   * </pre>
   */
  public static final class TransactionManagerServiceStub extends io.grpc.stub.AbstractAsyncStub<TransactionManagerServiceStub> {
    private TransactionManagerServiceStub(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      super(channel, callOptions);
    }

    @java.lang.Override
    protected TransactionManagerServiceStub build(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      return new TransactionManagerServiceStub(channel, callOptions);
    }

    /**
     * <pre>
     * NewGid returns a fresh, unique global transaction id.
     * </pre>
     */
    public void newGid(io.stepping.tm.v1.NewGidRequest request,
        io.grpc.stub.StreamObserver<io.stepping.tm.v1.NewGidResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getNewGidMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * Prepare stores a job as PREPARED (phase one of the 2-phase message). Its steps
     * run only after Submit, or after the QueryPrepared back-check says the
     * client's local transaction committed.
     * </pre>
     */
    public void prepare(io.stepping.tm.v1.PrepareRequest request,
        io.grpc.stub.StreamObserver<io.stepping.tm.v1.PrepareResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getPrepareMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * Submit starts a prepared job, or stores and starts a new one given its steps.
     * </pre>
     */
    public void submit(io.stepping.tm.v1.SubmitRequest request,
        io.grpc.stub.StreamObserver<io.stepping.tm.v1.SubmitResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getSubmitMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * Abort ends a prepared job without running any step.
     * </pre>
     */
    public void abort(io.stepping.tm.v1.AbortRequest request,
        io.grpc.stub.StreamObserver<io.stepping.tm.v1.AbortResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getAbortMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * GetTransaction returns a job and its steps.
     * </pre>
     */
    public void getTransaction(io.stepping.tm.v1.GetTransactionRequest request,
        io.grpc.stub.StreamObserver<io.stepping.tm.v1.GetTransactionResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getGetTransactionMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * ListTransactions pages through jobs, newest first.
     * </pre>
     */
    public void listTransactions(io.stepping.tm.v1.ListTransactionsRequest request,
        io.grpc.stub.StreamObserver<io.stepping.tm.v1.ListTransactionsResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getListTransactionsMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * Cancel stops a job: PREPARED -&gt; ABORTED (as Abort); a SUBMITTED message job
     * -&gt; FAILED with the reason (no further step is called); a SUBMITTED saga -&gt;
     * COMPENSATING -&gt; FAILED (done steps compensated); a finished job is returned
     * unchanged. Idempotent. A replica running the job notices within a poll when it
     * waits for a retry; a call in flight may finish there and its result is recorded.
     * </pre>
     */
    public void cancel(io.stepping.tm.v1.CancelRequest request,
        io.grpc.stub.StreamObserver<io.stepping.tm.v1.CancelResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getCancelMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * Resume runs a FAILED message job (or a saga that failed before anything was
     * compensated) again from its first step that did not succeed, with fresh
     * attempts; steps that succeeded are not called again. Idempotent.
     * </pre>
     */
    public void resume(io.stepping.tm.v1.ResumeRequest request,
        io.grpc.stub.StreamObserver<io.stepping.tm.v1.ResumeResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getResumeMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * CountTransactions counts the jobs matching a filter, per status.
     * </pre>
     */
    public void countTransactions(io.stepping.tm.v1.CountTransactionsRequest request,
        io.grpc.stub.StreamObserver<io.stepping.tm.v1.CountTransactionsResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getCountTransactionsMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * WatchTransaction streams a job's state: first as it is, then after every
     * change, until it is final (the last message) or the call ends.
     * </pre>
     */
    public void watchTransaction(io.stepping.tm.v1.WatchTransactionRequest request,
        io.grpc.stub.StreamObserver<io.stepping.tm.v1.WatchTransactionResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncServerStreamingCall(
          getChannel().newCall(getWatchTransactionMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * PurgeTransactions deletes finished jobs older than a limit (admin only).
     * </pre>
     */
    public void purgeTransactions(io.stepping.tm.v1.PurgeTransactionsRequest request,
        io.grpc.stub.StreamObserver<io.stepping.tm.v1.PurgeTransactionsResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getPurgeTransactionsMethod(), getCallOptions()), request, responseObserver);
    }
  }

  /**
   * <pre>
   * TransactionManagerService stores jobs (global transactions) of ordered steps
   * and calls each step's gRPC endpoint until the job completes.
   * Every RPC is idempotent on `gid`: repeating a request returns the current
   * state. A conflicting request fails with ALREADY_EXISTS or FAILED_PRECONDITION
   * and a google.rpc.ErrorInfo detail (domain "stepping.tm.v1") whose `reason` is
   * an ErrorReason name and whose metadata holds "gid" and, where relevant,
   * "status" (the job's current TransactionStatus name). Bad input fails with
   * INVALID_ARGUMENT and a google.rpc.BadRequest detail naming the field; nothing
   * is stored then.
   * </pre>
   */
  public static final class TransactionManagerServiceBlockingStub extends io.grpc.stub.AbstractBlockingStub<TransactionManagerServiceBlockingStub> {
    private TransactionManagerServiceBlockingStub(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      super(channel, callOptions);
    }

    @java.lang.Override
    protected TransactionManagerServiceBlockingStub build(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      return new TransactionManagerServiceBlockingStub(channel, callOptions);
    }

    /**
     * <pre>
     * NewGid returns a fresh, unique global transaction id.
     * </pre>
     */
    public io.stepping.tm.v1.NewGidResponse newGid(io.stepping.tm.v1.NewGidRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getNewGidMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Prepare stores a job as PREPARED (phase one of the 2-phase message). Its steps
     * run only after Submit, or after the QueryPrepared back-check says the
     * client's local transaction committed.
     * </pre>
     */
    public io.stepping.tm.v1.PrepareResponse prepare(io.stepping.tm.v1.PrepareRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getPrepareMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Submit starts a prepared job, or stores and starts a new one given its steps.
     * </pre>
     */
    public io.stepping.tm.v1.SubmitResponse submit(io.stepping.tm.v1.SubmitRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getSubmitMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Abort ends a prepared job without running any step.
     * </pre>
     */
    public io.stepping.tm.v1.AbortResponse abort(io.stepping.tm.v1.AbortRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getAbortMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * GetTransaction returns a job and its steps.
     * </pre>
     */
    public io.stepping.tm.v1.GetTransactionResponse getTransaction(io.stepping.tm.v1.GetTransactionRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getGetTransactionMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * ListTransactions pages through jobs, newest first.
     * </pre>
     */
    public io.stepping.tm.v1.ListTransactionsResponse listTransactions(io.stepping.tm.v1.ListTransactionsRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getListTransactionsMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Cancel stops a job: PREPARED -&gt; ABORTED (as Abort); a SUBMITTED message job
     * -&gt; FAILED with the reason (no further step is called); a SUBMITTED saga -&gt;
     * COMPENSATING -&gt; FAILED (done steps compensated); a finished job is returned
     * unchanged. Idempotent. A replica running the job notices within a poll when it
     * waits for a retry; a call in flight may finish there and its result is recorded.
     * </pre>
     */
    public io.stepping.tm.v1.CancelResponse cancel(io.stepping.tm.v1.CancelRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getCancelMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Resume runs a FAILED message job (or a saga that failed before anything was
     * compensated) again from its first step that did not succeed, with fresh
     * attempts; steps that succeeded are not called again. Idempotent.
     * </pre>
     */
    public io.stepping.tm.v1.ResumeResponse resume(io.stepping.tm.v1.ResumeRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getResumeMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * CountTransactions counts the jobs matching a filter, per status.
     * </pre>
     */
    public io.stepping.tm.v1.CountTransactionsResponse countTransactions(io.stepping.tm.v1.CountTransactionsRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getCountTransactionsMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * WatchTransaction streams a job's state: first as it is, then after every
     * change, until it is final (the last message) or the call ends.
     * </pre>
     */
    public java.util.Iterator<io.stepping.tm.v1.WatchTransactionResponse> watchTransaction(
        io.stepping.tm.v1.WatchTransactionRequest request) {
      return io.grpc.stub.ClientCalls.blockingServerStreamingCall(
          getChannel(), getWatchTransactionMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * PurgeTransactions deletes finished jobs older than a limit (admin only).
     * </pre>
     */
    public io.stepping.tm.v1.PurgeTransactionsResponse purgeTransactions(io.stepping.tm.v1.PurgeTransactionsRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getPurgeTransactionsMethod(), getCallOptions(), request);
    }
  }

  /**
   * <pre>
   * TransactionManagerService stores jobs (global transactions) of ordered steps
   * and calls each step's gRPC endpoint until the job completes.
   * Every RPC is idempotent on `gid`: repeating a request returns the current
   * state. A conflicting request fails with ALREADY_EXISTS or FAILED_PRECONDITION
   * and a google.rpc.ErrorInfo detail (domain "stepping.tm.v1") whose `reason` is
   * an ErrorReason name and whose metadata holds "gid" and, where relevant,
   * "status" (the job's current TransactionStatus name). Bad input fails with
   * INVALID_ARGUMENT and a google.rpc.BadRequest detail naming the field; nothing
   * is stored then.
   * </pre>
   */
  public static final class TransactionManagerServiceFutureStub extends io.grpc.stub.AbstractFutureStub<TransactionManagerServiceFutureStub> {
    private TransactionManagerServiceFutureStub(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      super(channel, callOptions);
    }

    @java.lang.Override
    protected TransactionManagerServiceFutureStub build(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      return new TransactionManagerServiceFutureStub(channel, callOptions);
    }

    /**
     * <pre>
     * NewGid returns a fresh, unique global transaction id.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<io.stepping.tm.v1.NewGidResponse> newGid(
        io.stepping.tm.v1.NewGidRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getNewGidMethod(), getCallOptions()), request);
    }

    /**
     * <pre>
     * Prepare stores a job as PREPARED (phase one of the 2-phase message). Its steps
     * run only after Submit, or after the QueryPrepared back-check says the
     * client's local transaction committed.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<io.stepping.tm.v1.PrepareResponse> prepare(
        io.stepping.tm.v1.PrepareRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getPrepareMethod(), getCallOptions()), request);
    }

    /**
     * <pre>
     * Submit starts a prepared job, or stores and starts a new one given its steps.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<io.stepping.tm.v1.SubmitResponse> submit(
        io.stepping.tm.v1.SubmitRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getSubmitMethod(), getCallOptions()), request);
    }

    /**
     * <pre>
     * Abort ends a prepared job without running any step.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<io.stepping.tm.v1.AbortResponse> abort(
        io.stepping.tm.v1.AbortRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getAbortMethod(), getCallOptions()), request);
    }

    /**
     * <pre>
     * GetTransaction returns a job and its steps.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<io.stepping.tm.v1.GetTransactionResponse> getTransaction(
        io.stepping.tm.v1.GetTransactionRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getGetTransactionMethod(), getCallOptions()), request);
    }

    /**
     * <pre>
     * ListTransactions pages through jobs, newest first.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<io.stepping.tm.v1.ListTransactionsResponse> listTransactions(
        io.stepping.tm.v1.ListTransactionsRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getListTransactionsMethod(), getCallOptions()), request);
    }

    /**
     * <pre>
     * Cancel stops a job: PREPARED -&gt; ABORTED (as Abort); a SUBMITTED message job
     * -&gt; FAILED with the reason (no further step is called); a SUBMITTED saga -&gt;
     * COMPENSATING -&gt; FAILED (done steps compensated); a finished job is returned
     * unchanged. Idempotent. A replica running the job notices within a poll when it
     * waits for a retry; a call in flight may finish there and its result is recorded.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<io.stepping.tm.v1.CancelResponse> cancel(
        io.stepping.tm.v1.CancelRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getCancelMethod(), getCallOptions()), request);
    }

    /**
     * <pre>
     * Resume runs a FAILED message job (or a saga that failed before anything was
     * compensated) again from its first step that did not succeed, with fresh
     * attempts; steps that succeeded are not called again. Idempotent.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<io.stepping.tm.v1.ResumeResponse> resume(
        io.stepping.tm.v1.ResumeRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getResumeMethod(), getCallOptions()), request);
    }

    /**
     * <pre>
     * CountTransactions counts the jobs matching a filter, per status.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<io.stepping.tm.v1.CountTransactionsResponse> countTransactions(
        io.stepping.tm.v1.CountTransactionsRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getCountTransactionsMethod(), getCallOptions()), request);
    }

    /**
     * <pre>
     * PurgeTransactions deletes finished jobs older than a limit (admin only).
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<io.stepping.tm.v1.PurgeTransactionsResponse> purgeTransactions(
        io.stepping.tm.v1.PurgeTransactionsRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getPurgeTransactionsMethod(), getCallOptions()), request);
    }
  }

  private static final int METHODID_NEW_GID = 0;
  private static final int METHODID_PREPARE = 1;
  private static final int METHODID_SUBMIT = 2;
  private static final int METHODID_ABORT = 3;
  private static final int METHODID_GET_TRANSACTION = 4;
  private static final int METHODID_LIST_TRANSACTIONS = 5;
  private static final int METHODID_CANCEL = 6;
  private static final int METHODID_RESUME = 7;
  private static final int METHODID_COUNT_TRANSACTIONS = 8;
  private static final int METHODID_WATCH_TRANSACTION = 9;
  private static final int METHODID_PURGE_TRANSACTIONS = 10;

  private static final class MethodHandlers<Req, Resp> implements
      io.grpc.stub.ServerCalls.UnaryMethod<Req, Resp>,
      io.grpc.stub.ServerCalls.ServerStreamingMethod<Req, Resp>,
      io.grpc.stub.ServerCalls.ClientStreamingMethod<Req, Resp>,
      io.grpc.stub.ServerCalls.BidiStreamingMethod<Req, Resp> {
    private final TransactionManagerServiceImplBase serviceImpl;
    private final int methodId;

    MethodHandlers(TransactionManagerServiceImplBase serviceImpl, int methodId) {
      this.serviceImpl = serviceImpl;
      this.methodId = methodId;
    }

    @java.lang.Override
    @java.lang.SuppressWarnings("unchecked")
    public void invoke(Req request, io.grpc.stub.StreamObserver<Resp> responseObserver) {
      switch (methodId) {
        case METHODID_NEW_GID:
          serviceImpl.newGid((io.stepping.tm.v1.NewGidRequest) request,
              (io.grpc.stub.StreamObserver<io.stepping.tm.v1.NewGidResponse>) responseObserver);
          break;
        case METHODID_PREPARE:
          serviceImpl.prepare((io.stepping.tm.v1.PrepareRequest) request,
              (io.grpc.stub.StreamObserver<io.stepping.tm.v1.PrepareResponse>) responseObserver);
          break;
        case METHODID_SUBMIT:
          serviceImpl.submit((io.stepping.tm.v1.SubmitRequest) request,
              (io.grpc.stub.StreamObserver<io.stepping.tm.v1.SubmitResponse>) responseObserver);
          break;
        case METHODID_ABORT:
          serviceImpl.abort((io.stepping.tm.v1.AbortRequest) request,
              (io.grpc.stub.StreamObserver<io.stepping.tm.v1.AbortResponse>) responseObserver);
          break;
        case METHODID_GET_TRANSACTION:
          serviceImpl.getTransaction((io.stepping.tm.v1.GetTransactionRequest) request,
              (io.grpc.stub.StreamObserver<io.stepping.tm.v1.GetTransactionResponse>) responseObserver);
          break;
        case METHODID_LIST_TRANSACTIONS:
          serviceImpl.listTransactions((io.stepping.tm.v1.ListTransactionsRequest) request,
              (io.grpc.stub.StreamObserver<io.stepping.tm.v1.ListTransactionsResponse>) responseObserver);
          break;
        case METHODID_CANCEL:
          serviceImpl.cancel((io.stepping.tm.v1.CancelRequest) request,
              (io.grpc.stub.StreamObserver<io.stepping.tm.v1.CancelResponse>) responseObserver);
          break;
        case METHODID_RESUME:
          serviceImpl.resume((io.stepping.tm.v1.ResumeRequest) request,
              (io.grpc.stub.StreamObserver<io.stepping.tm.v1.ResumeResponse>) responseObserver);
          break;
        case METHODID_COUNT_TRANSACTIONS:
          serviceImpl.countTransactions((io.stepping.tm.v1.CountTransactionsRequest) request,
              (io.grpc.stub.StreamObserver<io.stepping.tm.v1.CountTransactionsResponse>) responseObserver);
          break;
        case METHODID_WATCH_TRANSACTION:
          serviceImpl.watchTransaction((io.stepping.tm.v1.WatchTransactionRequest) request,
              (io.grpc.stub.StreamObserver<io.stepping.tm.v1.WatchTransactionResponse>) responseObserver);
          break;
        case METHODID_PURGE_TRANSACTIONS:
          serviceImpl.purgeTransactions((io.stepping.tm.v1.PurgeTransactionsRequest) request,
              (io.grpc.stub.StreamObserver<io.stepping.tm.v1.PurgeTransactionsResponse>) responseObserver);
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

  private static abstract class TransactionManagerServiceBaseDescriptorSupplier
      implements io.grpc.protobuf.ProtoFileDescriptorSupplier, io.grpc.protobuf.ProtoServiceDescriptorSupplier {
    TransactionManagerServiceBaseDescriptorSupplier() {}

    @java.lang.Override
    public com.google.protobuf.Descriptors.FileDescriptor getFileDescriptor() {
      return io.stepping.tm.v1.Tm.getDescriptor();
    }

    @java.lang.Override
    public com.google.protobuf.Descriptors.ServiceDescriptor getServiceDescriptor() {
      return getFileDescriptor().findServiceByName("TransactionManagerService");
    }
  }

  private static final class TransactionManagerServiceFileDescriptorSupplier
      extends TransactionManagerServiceBaseDescriptorSupplier {
    TransactionManagerServiceFileDescriptorSupplier() {}
  }

  private static final class TransactionManagerServiceMethodDescriptorSupplier
      extends TransactionManagerServiceBaseDescriptorSupplier
      implements io.grpc.protobuf.ProtoMethodDescriptorSupplier {
    private final String methodName;

    TransactionManagerServiceMethodDescriptorSupplier(String methodName) {
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
      synchronized (TransactionManagerServiceGrpc.class) {
        result = serviceDescriptor;
        if (result == null) {
          serviceDescriptor = result = io.grpc.ServiceDescriptor.newBuilder(SERVICE_NAME)
              .setSchemaDescriptor(new TransactionManagerServiceFileDescriptorSupplier())
              .addMethod(getNewGidMethod())
              .addMethod(getPrepareMethod())
              .addMethod(getSubmitMethod())
              .addMethod(getAbortMethod())
              .addMethod(getGetTransactionMethod())
              .addMethod(getListTransactionsMethod())
              .addMethod(getCancelMethod())
              .addMethod(getResumeMethod())
              .addMethod(getCountTransactionsMethod())
              .addMethod(getWatchTransactionMethod())
              .addMethod(getPurgeTransactionsMethod())
              .build();
        }
      }
    }
    return result;
  }
}
