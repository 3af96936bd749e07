package engine

import "testing"

// FuzzRugixSystemInfo feeds arbitrary bytes to the system info parser: it must return a
// state or an error, never panic, and a state it returns must name both groups.
func FuzzRugixSystemInfo(f *testing.F) {
	f.Add([]byte(`{"boot":{"activeGroup":"a","defaultGroup":"a","groups":{"a":{},"b":{}}}}`))
	f.Add([]byte(`{"slots":{"system-b":{"active":false,"updatedAt":"2026-01-01T12:00:00Z"}},"boot":{"activeGroup":"b","defaultGroup":"a"}}`))
	f.Add([]byte(`{"boot":null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := ParseRugixSystemInfo(data)
		if err == nil && (st.ActiveGroup == "" || st.DefaultGroup == "") {
			t.Fatalf("state without groups: %+v", st)
		}
		if err == nil && st.NeedsCommit != (st.ActiveGroup != st.DefaultGroup) {
			t.Fatalf("NeedsCommit inconsistent: %+v", st)
		}
	})
}

// FuzzRaucStatus feeds arbitrary bytes to the rauc status parser.
func FuzzRaucStatus(f *testing.F) {
	f.Add([]byte(`{"booted":"A","boot_primary":"rootfs.0","slots":[{"rootfs.0":{"bootname":"A","state":"booted","boot_status":"good"}},{"rootfs.1":{"bootname":"B","boot_status":"bad"}}]}`))
	f.Add([]byte(`{"booted":"A","slots":[]}`))
	f.Add([]byte(`{"slots":[null,{}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := ParseRaucStatus(data)
		if err == nil && (st.ActiveGroup == "" || st.DefaultGroup == "") {
			t.Fatalf("state without groups: %+v", st)
		}
	})
}
