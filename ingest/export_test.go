package ingest

import "testing"

// AllocsOfIdentify measures the allocations of checking one Authorization
// header, for the allocation test in package ingest_test.
func AllocsOfIdentify(s *Server, authz []byte) float64 {
	return testing.AllocsPerRun(200, func() { s.identify(authz) })
}
