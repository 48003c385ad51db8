package jsonw

import (
	"encoding/json"
	"testing"
)

func TestAppendString(t *testing.T) {
	f := func(in, want string) {
		t.Helper()
		if got := string(AppendString(nil, in)); got != want {
			t.Errorf("AppendString(%q) = %s, want %s", in, got, want)
		}
		if got := string(AppendString(nil, []byte(in))); got != want {
			t.Errorf("AppendString([]byte %q) = %s, want %s", in, got, want)
		}
		var back string
		if err := json.Unmarshal([]byte(want), &back); err != nil {
			t.Errorf("%s is not JSON: %v", want, err)
		}
	}
	f("plain", `"plain"`)
	f(`q"b\s`, `"q\"b\\s"`)
	f("a\nb\tc\r\x01\x7f", `"a\nb\tc\r\u0001\u007f"`)
	f("ünï", `"ünï"`)
	f("bad\xffutf8", `"bad\ufffdutf8"`)
	f("line\u2028sep", `"line\u2028sep"`)
}
