//go:build race

package fleetsim

// The race detector makes the simulator, the decoder and the engine's Go
// side many times slower; the timing tests shrink their fleets under it.
const raceEnabled = true
