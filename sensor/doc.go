// Package sensor is Netview's host sensor: it reads the host's sockets and
// processes, tracks flows, derives network events and delivers heartbeats
// to the ingest tier without losing any.
package sensor
