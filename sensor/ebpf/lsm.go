package ebpf

import (
	"errors"
	"os"
	"slices"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/features"
)

// LSMStatus says, for the sensor's lsm capability, whether connects can be
// seen at the LSM hook (lsm_net_connect events). The sensor has no LSM
// program yet, so it is "unavailable" everywhere; the reason says whether
// the kernel would offer BPF LSM at all.
func LSMStatus() string {
	if err := features.HaveProgramType(ebpf.LSM); errors.Is(err, ebpf.ErrNotSupported) {
		return "unavailable: the kernel does not offer BPF LSM programs"
	} else if err != nil {
		return "unavailable: cannot check for BPF LSM: " + err.Error()
	}
	b, err := os.ReadFile("/sys/kernel/security/lsm")
	if err != nil {
		return "unavailable: no /sys/kernel/security/lsm to check that bpf is an active LSM"
	}
	if !slices.Contains(strings.Split(strings.TrimSpace(string(b)), ","), "bpf") {
		return "unavailable: bpf is not an active LSM (lsm= boot parameter)"
	}
	return "unavailable: BPF LSM is offered, but this sensor has no LSM program yet"
}
