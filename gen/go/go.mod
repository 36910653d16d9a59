// Go module of the generated Stepping TM stubs (hand-written; scripts/gen-stubs
// regenerates only the stepping/ tree). Import e.g.
// github.com/stepping-tm/stepping/gen/go/stepping/tm/v1 (package tmv1).
// The minimums are the versions the stubs are compile-checked against
// (Debian bookworm's packages, see scripts/check-stubs).
module github.com/stepping-tm/stepping/gen/go

go 1.19

require (
	google.golang.org/grpc v1.33.3
	google.golang.org/protobuf v1.28.1
)
