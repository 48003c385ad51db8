package heartbeat

import (
	"encoding/json"
	"net/netip"
	"strconv"
	"time"

	"github.com/google/uuid"
)

// Completed flows and events are most of a busy sensor's heartbeat (tens
// of thousands an interval) and encoding/json spends most of its time on
// them through reflection and an allocation per address and time. These
// append the same bytes json.Marshal writes for them (TestAppendMatchesJSON
// holds them to it) without either.

func appendFlows(b []byte, fs []Flow) []byte {
	if fs == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i := range fs {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendFlow(b, &fs[i])
	}
	return append(b, ']')
}

func appendFlow(b []byte, f *Flow) []byte {
	b = append(b, `{"flow_id":`...)
	b = appendUUID(b, f.FlowID)
	b = append(b, `,"protocol":`...)
	b = appendString(b, f.Protocol)
	b = append(b, `,"direction":`...)
	b = appendString(b, f.Direction)
	b = append(b, `,"src_address":`...)
	b = appendAddr(b, f.SrcAddress)
	b = append(b, `,"src_port":`...)
	b = strconv.AppendUint(b, uint64(f.SrcPort), 10)
	b = append(b, `,"dst_address":`...)
	b = appendAddr(b, f.DstAddress)
	b = append(b, `,"dst_port":`...)
	b = strconv.AppendUint(b, uint64(f.DstPort), 10)
	b = appendProcess(b, &f.Process)
	b = append(b, `,"started_at":`...)
	b = appendTime(b, f.StartedAt)
	if !f.EndedAt.IsZero() {
		b = append(b, `,"ended_at":`...)
		b = appendTime(b, f.EndedAt)
	}
	b = append(b, `,"bytes_sent":`...)
	b = strconv.AppendUint(b, f.BytesSent, 10)
	b = append(b, `,"bytes_received":`...)
	b = strconv.AppendUint(b, f.BytesReceived, 10)
	b = append(b, `,"state":`...)
	b = appendString(b, f.State)
	b = append(b, `,"source":`...)
	b = appendString(b, f.Source)
	return append(b, '}')
}

func appendEvents(b []byte, es []Event) []byte {
	if es == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i := range es {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendEvent(b, &es[i])
	}
	return append(b, ']')
}

func appendEvent(b []byte, e *Event) []byte {
	b = append(b, `{"event_id":`...)
	b = appendUUID(b, e.EventID)
	b = append(b, `,"kind":`...)
	b = appendString(b, e.Kind)
	b = append(b, `,"time":`...)
	b = appendTime(b, e.Time)
	if e.Protocol != "" {
		b = append(b, `,"protocol":`...)
		b = appendString(b, e.Protocol)
	}
	if e.SrcAddress.IsValid() {
		b = append(b, `,"src_address":`...)
		b = appendAddr(b, e.SrcAddress)
	}
	if e.SrcPort != 0 {
		b = append(b, `,"src_port":`...)
		b = strconv.AppendUint(b, uint64(e.SrcPort), 10)
	}
	if e.DstAddress.IsValid() {
		b = append(b, `,"dst_address":`...)
		b = appendAddr(b, e.DstAddress)
	}
	if e.DstPort != 0 {
		b = append(b, `,"dst_port":`...)
		b = strconv.AppendUint(b, uint64(e.DstPort), 10)
	}
	b = appendProcess(b, &e.Process)
	if e.QueryName != "" {
		b = append(b, `,"query_name":`...)
		b = appendString(b, e.QueryName)
	}
	if e.QueryType != "" {
		b = append(b, `,"query_type":`...)
		b = appendString(b, e.QueryType)
	}
	if len(e.Answers) > 0 {
		b = append(b, `,"answers":[`...)
		for i, a := range e.Answers {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendAddr(b, a)
		}
		b = append(b, ']')
	}
	if e.State != "" {
		b = append(b, `,"state":`...)
		b = appendString(b, e.State)
	}
	if e.Source != "" {
		b = append(b, `,"source":`...)
		b = appendString(b, e.Source)
	}
	return append(b, '}')
}

// appendProcess writes the embedded Process's members, each after a comma.
func appendProcess(b []byte, p *Process) []byte {
	if p.PID != 0 {
		b = append(b, `,"pid":`...)
		b = strconv.AppendUint(b, uint64(p.PID), 10)
	}
	if p.Binary != "" {
		b = append(b, `,"binary":`...)
		b = appendString(b, p.Binary)
	}
	if p.BinaryPath != "" {
		b = append(b, `,"binary_path":`...)
		b = appendString(b, p.BinaryPath)
	}
	b = append(b, `,"uid":`...)
	return strconv.AppendUint(b, uint64(p.UID), 10)
}

func appendUUID(b []byte, u uuid.UUID) []byte {
	const hexdigits = "0123456789abcdef"
	b = append(b, '"')
	for i, c := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b = append(b, '-')
		}
		b = append(b, hexdigits[c>>4], hexdigits[c&0xf])
	}
	return append(b, '"')
}

func appendAddr(b []byte, a netip.Addr) []byte {
	b = append(b, '"')
	b = a.AppendTo(b) // nothing for the zero Addr, as MarshalText
	return append(b, '"')
}

func appendTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

// appendString writes s as encoding/json does. Names and paths are plain
// ASCII almost always; anything else (escapes, HTML characters, other
// UTF-8) goes through encoding/json itself.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
