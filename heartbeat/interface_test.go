package heartbeat_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/netview/netview/heartbeat"
)

// edited is full() as JSON after f changed its generic form.
func edited(t *testing.T, f func(m map[string]any)) []byte {
	t.Helper()
	m := wireParse(t, wireMarshal(t, full()))
	f(m)
	return wireMarshal(t, m)
}

func iface(m map[string]any) map[string]any { return m["interfaces"].([]any)[0].(map[string]any) }

// Bad interfaces and sites are refused with an error that names the field
// and says what was wrong, as every other field is; the same document
// without the fault is taken.
func TestInterfaceValidation(t *testing.T) {
	if _, err := heartbeat.Decode(edited(t, func(map[string]any) {})); err != nil {
		t.Fatalf("the unedited heartbeat is refused: %v", err)
	}
	many := func(n int, v any) []any {
		out := make([]any, n)
		for i := range out {
			out[i] = v
		}
		return out
	}
	for _, c := range []struct {
		name string
		edit func(m map[string]any)
		want string // "" when the edit is valid
	}{
		{"upper-case mac", func(m map[string]any) { iface(m)["mac"] = "02:42:AC:11:00:02" }, `interfaces[0].mac: "02:42:AC:11:00:02" is not a MAC address`},
		{"mac without colons", func(m map[string]any) { iface(m)["mac"] = "0242ac110002" }, `interfaces[0].mac: "0242ac110002" is not a MAC address`},
		{"mac of an odd digit", func(m map[string]any) { iface(m)["mac"] = "02:42:ac:11:00:0" }, "is not a MAC address"},
		{"mac of 33 bytes", func(m map[string]any) { iface(m)["mac"] = strings.Repeat("ab:", 32) + "ab" }, "interfaces[0].mac: longer than 95 bytes"},
		{"infiniband mac", func(m map[string]any) { iface(m)["mac"] = strings.Repeat("80:", 19) + "01" }, ""},
		{"address without a length", func(m map[string]any) { iface(m)["addresses"] = []any{"10.1.2.3"} }, `interfaces[0].addresses: "10.1.2.3" is not an address with its prefix length`},
		{"length over 32", func(m map[string]any) { iface(m)["addresses"] = []any{"10.1.2.3/33"} }, `"10.1.2.3/33" is not an address`},
		{"address with a zone", func(m map[string]any) { iface(m)["addresses"] = []any{"fe80::1%eth0/64"} }, `"fe80::1%eth0/64" is not an address`},
		{"address not a string", func(m map[string]any) { iface(m)["addresses"] = []any{7} }, "interfaces[0].addresses"},
		{"too many addresses", func(m map[string]any) { iface(m)["addresses"] = many(heartbeat.MaxIfaceAddrs+1, "10.0.0.5/24") }, "interfaces[0].addresses: more than 1024 addresses"},
		{"as many addresses as allowed", func(m map[string]any) { iface(m)["addresses"] = many(heartbeat.MaxIfaceAddrs, "10.0.0.5/24") }, ""},
		{"too many interfaces", func(m map[string]any) { m["interfaces"] = many(heartbeat.MaxInterfaces+1, iface(m)) }, "interfaces[4096]: more than 4096 interfaces"},
		{"empty name", func(m map[string]any) { iface(m)["name"] = "" }, "interfaces[0].name: empty"},
		{"long name", func(m map[string]any) { iface(m)["name"] = "abcdefghijklmnop" }, "interfaces[0].name: longer than 15 bytes"},
		{"no name", func(m map[string]any) { delete(iface(m), "name") }, "interfaces[0].name: required"},
		{"index 0", func(m map[string]any) { iface(m)["index"] = 0 }, "interfaces[0].index: out of range"},
		{"up a string", func(m map[string]any) { iface(m)["up"] = "yes" }, "interfaces[0].up"},
		{"site upper-case", func(m map[string]any) { m["sensor"].(map[string]any)["site"] = "Fra1" }, `sensor.site: "Fra1": want a-z`},
		{"site empty", func(m map[string]any) { m["sensor"].(map[string]any)["site"] = "" }, `sensor.site: "": want 1 to 63 bytes`},
		{"site with a slash", func(m map[string]any) { m["sensor"].(map[string]any)["site"] = "dc/1" }, `sensor.site: "dc/1"`},
		{"site starting with a dot", func(m map[string]any) { m["sensor"].(map[string]any)["site"] = ".dc" }, `sensor.site: ".dc"`},
	} {
		_, err := heartbeat.Decode(edited(t, c.edit))
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: refused: %v", c.name, err)
		case c.want != "" && (err == nil || !errors.Is(err, heartbeat.ErrInvalid) || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: got %v, want an invalid heartbeat saying %q", c.name, err, c.want)
		}
	}
}

// Every address is a stored row: an interface of many addresses counts
// against MaxRows as that many rows.
func TestInterfaceAddressesCountAsRows(t *testing.T) {
	h := full()
	doc := edited(t, func(m map[string]any) {
		as := make([]any, 40)
		for i := range as {
			as[i] = fmt.Sprintf("10.0.0.%d/24", i+1)
		}
		iface(m)["addresses"] = as
	})
	rows := wireRows(h) // full()'s rows but its one interface
	var c copySink
	d := heartbeat.Decoder{MaxRows: rows + 40}
	if _, err := d.Decode(doc, &c); err != nil {
		t.Fatalf("%d rows allowed: %v", rows+40, err)
	}
	if len(c.h.Interfaces) != 1 || len(c.h.Interfaces[0].Addresses) != 40 {
		t.Fatalf("interfaces read: %+v", c.h.Interfaces)
	}
	d = heartbeat.Decoder{MaxRows: rows + 39}
	// The generic map writes its members sorted: whichever row crosses the
	// budget is named, the interface's addresses having been counted.
	if _, err := d.Decode(doc, &copySink{}); !errors.Is(err, heartbeat.ErrTooManyRows) {
		t.Fatalf("%d rows allowed: got %v, want ErrTooManyRows", rows+39, err)
	}
}

func TestValidSiteAndMAC(t *testing.T) {
	for _, s := range []string{"a", "fra1", "eu-west.dc_2", strings.Repeat("x", heartbeat.MaxSite)} {
		if err := heartbeat.ValidSite(s); err != nil {
			t.Errorf("ValidSite(%q) = %v", s, err)
		}
	}
	for _, s := range []string{"", "-a", "A", "a b", "a/b", "é", strings.Repeat("x", heartbeat.MaxSite+1)} {
		if heartbeat.ValidSite(s) == nil {
			t.Errorf("ValidSite(%q) accepts it", s)
		}
	}
	for _, s := range []string{"00", "02:42:ac:11:00:02", strings.Repeat("ff:", 31) + "ff"} {
		if !heartbeat.ValidMAC(s) {
			t.Errorf("ValidMAC(%q) = false", s)
		}
	}
	for _, s := range []string{"", "0", "02:42:ac:11:00:0g", "02-42-ac-11-00-02", "02:42:ac:11:00:02:", strings.Repeat("ff:", 32) + "ff"} {
		if heartbeat.ValidMAC(s) {
			t.Errorf("ValidMAC(%q) = true", s)
		}
	}
}
