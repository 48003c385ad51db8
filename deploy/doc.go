// Package deploy holds Netview's deployment files: the Compose stack
// (compose/), Kubernetes manifests (k8s/), the sensor's systemd unit and
// installer (systemd/), ClickHouse configuration and cluster schema
// (clickhouse/), the nginx load balancer (nginx/) and the Dockerfile of the
// three programs. It has no Go code of its own: its tests parse every file
// and check it against the programs' real flags, routes and schema (see
// deploy_test.go and README.md).
package deploy
