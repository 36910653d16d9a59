// Stub smoke test for gen/go (scripts/check-stubs builds and runs it): builds
// the reference SubmitRequest, prints its wire bytes as hex for comparison with
// the other languages, and pins that client and server types exist.
package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"os"

	participantv1 "github.com/stepping-tm/stepping/gen/go/stepping/participant/v1"
	tmv1 "github.com/stepping-tm/stepping/gen/go/stepping/tm/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
)

// participant shows that a Go service can implement QueryPrepared.
type participant struct {
	participantv1.UnimplementedParticipantServiceServer
}

func (participant) QueryPrepared(context.Context, *participantv1.QueryPreparedRequest) (*participantv1.QueryPreparedResponse, error) {
	return &participantv1.QueryPreparedResponse{Outcome: participantv1.PreparedOutcome_PREPARED_OUTCOME_COMMITTED}, nil
}

func main() {
	req := &tmv1.SubmitRequest{
		Gid: "g-1",
		Steps: []*tmv1.Step{{
			Name:    "s1",
			Action:  &tmv1.Endpoint{Target: "127.0.0.1:1", Method: "/x.v1.Y/Z"},
			Payload: []byte{1, 2},
			Headers: map[string]string{"k": "v"},
			Timeout: durationpb.New(3_000_000_000),
		}},
		Options:    &tmv1.TransactionOptions{Mode: tmv1.Mode_MODE_SAGA},
		WaitResult: true,
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(req)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	srv := grpc.NewServer()
	participantv1.RegisterParticipantServiceServer(srv, participant{})
	var _ func(grpc.ClientConnInterface) tmv1.TransactionManagerServiceClient = tmv1.NewTransactionManagerServiceClient
	fmt.Println(hex.EncodeToString(b))
}
