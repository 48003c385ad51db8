package ebpf

import (
	"net/netip"
	"time"
)

// Lineage joins a process's getaddrinfo answers to the connection it then
// makes, so a connection can name the host it was made for. The rule is
// simple on purpose: the first connection a process makes to an address
// that one of its lookups returned in the last Window is made for that
// lookup's name; the lookup is then used up. Not safe for concurrent use.
type Lineage struct {
	// Window is how long a lookup's answers wait for a connection.
	Window time.Duration
	// Max bounds the lookups kept; the oldest go first.
	Max     int
	lookups []lookup
}

type lookup struct {
	pid     uint32
	at      time.Time
	name    string
	answers []netip.Addr
}

// Resolution is a lookup joined to a connection.
type Resolution struct {
	Name    string
	Answers []netip.Addr
	At      time.Time // when the lookup was made
}

// Lookup remembers that process pid resolved name to answers at.
func (l *Lineage) Lookup(pid uint32, name string, answers []netip.Addr, at time.Time) {
	if len(answers) == 0 || pid == 0 {
		return
	}
	l.expire(at)
	max := l.Max
	if max <= 0 {
		max = 4096
	}
	if len(l.lookups) >= max {
		l.lookups = append(l.lookups[:0], l.lookups[len(l.lookups)-max+1:]...)
	}
	l.lookups = append(l.lookups, lookup{pid: pid, at: at, name: name, answers: answers})
}

// Connect reports the lookup that process pid's connection to dst at was
// made for, newest lookup first, and uses it up.
func (l *Lineage) Connect(pid uint32, dst netip.Addr, at time.Time) (Resolution, bool) {
	dst = dst.Unmap()
	for i := len(l.lookups) - 1; i >= 0; i-- {
		lk := &l.lookups[i]
		if lk.pid != pid || at.Sub(lk.at) > l.window() || at.Before(lk.at) {
			continue
		}
		for _, a := range lk.answers {
			if a.Unmap() == dst {
				r := Resolution{Name: lk.name, Answers: lk.answers, At: lk.at}
				l.lookups = append(l.lookups[:i], l.lookups[i+1:]...)
				return r, true
			}
		}
	}
	return Resolution{}, false
}

func (l *Lineage) window() time.Duration {
	if l.Window <= 0 {
		return time.Minute
	}
	return l.Window
}

// expire drops lookups older than the window (they are kept in time order).
func (l *Lineage) expire(now time.Time) {
	i := 0
	for i < len(l.lookups) && now.Sub(l.lookups[i].at) > l.window() {
		i++
	}
	if i > 0 {
		l.lookups = append(l.lookups[:0], l.lookups[i:]...)
	}
}
