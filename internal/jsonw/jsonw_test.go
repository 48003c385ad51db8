package jsonw

import (
	"encoding/json"
	"testing"

	"github.com/google/uuid"
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

func TestAppendUUID(t *testing.T) {
	for _, u := range []uuid.UUID{{}, uuid.Max, uuid.MustParse("0123ABCD-89ab-4def-8000-00000000fF01"), uuid.New()} {
		want := u.String()
		if got := string(AppendUUIDText(nil, u)); got != want {
			t.Errorf("AppendUUIDText(%v) = %s", want, got)
		}
		if got := string(AppendUUID([]byte("x"), u)); got != `x"`+want+`"` {
			t.Errorf("AppendUUID(x, %v) = %s", want, got)
		}
		var back uuid.UUID
		if err := json.Unmarshal(AppendUUID(nil, u), &back); err != nil || back != u {
			t.Errorf("AppendUUID(%v) reads back as %v, %v", want, back, err)
		}
	}
}
