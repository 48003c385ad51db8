//go:build !race

package procnet

const raceEnabled = false
