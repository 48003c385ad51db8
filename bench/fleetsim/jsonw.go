package fleetsim

import (
	"net/netip"
	"strconv"

	"github.com/google/uuid"
)

// Append helpers for the heartbeat writer. Every string the simulator
// writes is plain ASCII it chose itself (names, paths, enum words), so none
// needs escaping; nothing here allocates once the buffer is big enough.

const hexDigits = "0123456789abcdef"

func appendUUID(b []byte, u uuid.UUID) []byte {
	var s [36]byte
	j := 0
	for i, c := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			s[j] = '-'
			j++
		}
		s[j], s[j+1] = hexDigits[c>>4], hexDigits[c&15]
		j += 2
	}
	b = append(b, '"')
	b = append(b, s[:]...)
	return append(b, '"')
}

func appendAddr(b []byte, a netip.Addr) []byte {
	b = append(b, '"')
	b = a.AppendTo(b)
	return append(b, '"')
}

func appendStr(b []byte, s string) []byte {
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

func appendUint(b []byte, v uint64) []byte { return strconv.AppendUint(b, v, 10) }

// member appends `,"name":` (the comma only when b does not end an opening
// brace or bracket).
func member(b []byte, name string) []byte {
	if n := len(b); n > 0 && b[n-1] != '{' && b[n-1] != '[' {
		b = append(b, ',')
	}
	b = append(b, '"')
	b = append(b, name...)
	return append(b, '"', ':')
}

// timeWriter writes Unix milliseconds as RFC 3339 UTC with milliseconds
// (2026-03-14T09:26:45.120Z), caching the date of the last day written.
type timeWriter struct {
	day  int64
	date [11]byte // "2026-03-14T"
}

func (w *timeWriter) append(b []byte, ms int64) []byte {
	day := floorDiv(ms, 86_400_000)
	if day != w.day || w.date[0] == 0 {
		w.day = day
		y, m, d := civil(day)
		w.date = [11]byte{byte('0' + y/1000), byte('0' + y/100%10), byte('0' + y/10%10), byte('0' + y%10), '-',
			byte('0' + m/10), byte('0' + m%10), '-', byte('0' + d/10), byte('0' + d%10), 'T'}
	}
	rem := ms - day*86_400_000
	h, mi, s, milli := rem/3_600_000, rem/60_000%60, rem/1000%60, rem%1000
	b = append(b, '"')
	b = append(b, w.date[:]...)
	return append(b, byte('0'+h/10), byte('0'+h%10), ':', byte('0'+mi/10), byte('0'+mi%10), ':',
		byte('0'+s/10), byte('0'+s%10), '.', byte('0'+milli/100), byte('0'+milli/10%10), byte('0'+milli%10), 'Z', '"')
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// civil converts days since 1970-01-01 to a proleptic Gregorian date
// (Howard Hinnant's days_from_civil, inverted).
func civil(days int64) (y, m, d int64) {
	z := days + 719468
	era := floorDiv(z, 146097)
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	y = yoe + era*400
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d = doy - (153*mp+2)/5 + 1
	if mp < 10 {
		m = mp + 3
	} else {
		m = mp - 9
	}
	if m <= 2 {
		y++
	}
	return y, m, d
}
