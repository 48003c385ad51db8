package fleetsim

// What runs on the simulated hosts: the processes behind the sockets, the
// ports they listen on and the services they talk to.

type app struct {
	name, path string
	uid        uint32
	tcp        []uint16 // listening ports
	udp        []uint16 // bound UDP ports
	sctp       []uint16 // SCTP endpoints (telecom)
	dsts       []uint16 // ports it connects to
}

// Every host runs these.
var (
	appSSHD     = app{name: "sshd", path: "/usr/sbin/sshd", uid: 0, tcp: []uint16{22}}
	appResolved = app{name: "systemd-resolve", path: "/usr/lib/systemd/systemd-resolved", uid: 101, tcp: []uint16{53}, udp: []uint16{53}}
	appChrony   = app{name: "chronyd", path: "/usr/sbin/chronyd", uid: 0, udp: []uint16{123, 323}}
)

// Server software, some of which each host runs.
var serverApps = []app{
	{name: "nginx", path: "/usr/sbin/nginx", uid: 33, tcp: []uint16{80, 443}, dsts: []uint16{8080, 8443}},
	{name: "postgres", path: "/usr/lib/postgresql/16/bin/postgres", uid: 112, tcp: []uint16{5432}},
	{name: "redis-server", path: "/usr/bin/redis-server", uid: 113, tcp: []uint16{6379}},
	{name: "java", path: "/usr/lib/jvm/java-21-openjdk-amd64/bin/java", uid: 1000, tcp: []uint16{8080, 8443, 9090}, dsts: []uint16{5432, 6379, 9092, 443}},
	{name: "envoy", path: "/usr/local/bin/envoy", uid: 1001, tcp: []uint16{10000, 9901}, dsts: []uint16{8080, 443}},
	{name: "node_exporter", path: "/usr/local/bin/node_exporter", uid: 65534, tcp: []uint16{9100}},
	{name: "containerd", path: "/usr/bin/containerd", uid: 0, tcp: []uint16{10010}, dsts: []uint16{443}},
	{name: "mysqld", path: "/usr/sbin/mysqld", uid: 27, tcp: []uint16{3306, 33060}},
	{name: "kafka", path: "/opt/kafka/bin/kafka-server", uid: 1002, tcp: []uint16{9092, 9093}, dsts: []uint16{2181, 9092}},
	{name: "dockerd", path: "/usr/bin/dockerd", uid: 0, tcp: []uint16{2375}, dsts: []uint16{443}},
}

// Clients that only connect out.
var clientApps = []app{
	{name: "curl", path: "/usr/bin/curl", uid: 1000, dsts: []uint16{443, 80}},
	{name: "python3", path: "/usr/bin/python3.12", uid: 1000, dsts: []uint16{443, 5432, 6379}},
	{name: "apt-get", path: "/usr/bin/apt-get", uid: 0, dsts: []uint16{80, 443}},
	{name: "prometheus", path: "/usr/local/bin/prometheus", uid: 65534, dsts: []uint16{9100, 9090}},
	{name: "fluent-bit", path: "/opt/fluent-bit/bin/fluent-bit", uid: 0, dsts: []uint16{443, 9200}},
}

// UDP services beyond the resolver and NTP.
var udpApps = []app{
	{name: "avahi-daemon", path: "/usr/sbin/avahi-daemon", uid: 107, udp: []uint16{5353}},
	{name: "dhclient", path: "/usr/sbin/dhclient", uid: 0, udp: []uint16{68}},
	{name: "snmpd", path: "/usr/sbin/snmpd", uid: 0, udp: []uint16{161}},
	{name: "rsyslogd", path: "/usr/sbin/rsyslogd", uid: 0, udp: []uint16{514}},
}

// Telecom hosts run a 5G/4G core: GTP-U and PFCP on the UPF, PFCP and
// GTP-C on the SMF, NGAP (SCTP 38412) on the AMF, S1AP (SCTP 36412) on the
// MME, Diameter (SCTP 3868) on the HSS, RADIUS on freeradius.
var (
	appUPF    = app{name: "open5gs-upfd", path: "/usr/bin/open5gs-upfd", uid: 0, udp: []uint16{2152, 8805}}
	appSMF    = app{name: "open5gs-smfd", path: "/usr/bin/open5gs-smfd", uid: 0, udp: []uint16{8805, 2123}, tcp: []uint16{7777}}
	appAMF    = app{name: "open5gs-amfd", path: "/usr/bin/open5gs-amfd", uid: 0, sctp: []uint16{38412}, tcp: []uint16{7778}}
	appMME    = app{name: "open5gs-mmed", path: "/usr/bin/open5gs-mmed", uid: 0, sctp: []uint16{36412}}
	appHSS    = app{name: "open5gs-hssd", path: "/usr/bin/open5gs-hssd", uid: 0, sctp: []uint16{3868}}
	appRADIUS = app{name: "freeradius", path: "/usr/sbin/freeradius", uid: 105, udp: []uint16{1812, 1813}}
)

// Names of the services hosts connect to, by port.
var serviceNames = map[uint16][]string{
	443:  {"api.example.com", "cdn.example.net", "auth.example.com", "registry.example.io", "updates.example.org"},
	80:   {"mirror.example.org", "deb.example.net"},
	5432: {"db-primary.prod.internal", "db-replica-1.prod.internal", "pg-analytics.prod.internal"},
	6379: {"redis-cache.prod.internal", "sessions.prod.internal"},
	8080: {"app-backend.prod.internal", "orders.prod.internal", "catalog.prod.internal"},
	8443: {"payments.prod.internal"},
	9092: {"kafka-1.prod.internal", "kafka-2.prod.internal", "kafka-3.prod.internal"},
	9100: {"node-metrics.prod.internal"},
	9090: {"prometheus.prod.internal"},
	9200: {"logs.prod.internal"},
	2181: {"zk-1.prod.internal"},
}
