// Package uplink is how a sensor reaches ingest: the link flags and TLS
// (Link), the sensor's own key, enrolled and rotated with an enrollment
// secret (Keyring), the client that posts one heartbeat and says whether
// to retry it (Client.Send, StatusError, RetryError, Backoff), and the
// Sender that delivers a sensor/spool to that client, strictly in order.
package uplink
