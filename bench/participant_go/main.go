// A minimal participant for the benchmark: answers every unary gRPC method OK with an
// empty message, whatever the request. Go, so that the participants cost the machine
// as little as the peers' did (the TM under test is what is measured); the Python one
// in bench/_participant.py does the same.
//
// Usage: participant <port>   (prints "READY <port>" once serving; 0 = a free port)
package main

import (
	"fmt"
	"net"
	"os"

	"google.golang.org/grpc"
)

// rawCodec passes message bytes through: no schema needed to answer any method.
type rawCodec struct{}

func (rawCodec) Marshal(v interface{}) ([]byte, error) { return *(v.(*[]byte)), nil }
func (rawCodec) Unmarshal(data []byte, v interface{}) error {
	*(v.(*[]byte)) = data
	return nil
}
func (rawCodec) String() string { return "raw" }

func answer(_ interface{}, stream grpc.ServerStream) error {
	var in []byte
	if err := stream.RecvMsg(&in); err != nil {
		return err
	}
	out := []byte{}
	return stream.SendMsg(&out)
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: participant <port>")
		os.Exit(2)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:"+os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	//nolint:staticcheck // CustomCodec: the codec API of the grpc-go Debian ships (1.33)
	server := grpc.NewServer(grpc.CustomCodec(rawCodec{}), grpc.UnknownServiceHandler(answer))
	fmt.Printf("READY %d\n", lis.Addr().(*net.TCPAddr).Port)
	if err := server.Serve(lis); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
