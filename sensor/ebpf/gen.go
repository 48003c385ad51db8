package ebpf

// The BPF object and its Go loader are generated and committed, so building
// the sensor needs no clang. Regenerate after editing bpf/netview.c or
// bpf/records.h (needs clang-16; see the Makefile's generate target).
//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -cc clang-16 -cflags "-O2 -g -Wall -Werror" -target amd64 -no-global-types netview bpf/netview.c
