package throttle

import "testing"

func TestFailuresSlowDownPerAccountAndPerAddress(t *testing.T) {
	f := New()
	if d := f.Wait("alice", "10.0.0.1"); d != 0 {
		t.Fatalf("fresh: wait %v", d)
	}
	for range accountBurst {
		f.Fail("alice", "10.0.0.1")
	}
	if d := f.Wait("alice", "10.0.0.9"); d <= 0 || d > accountInterval {
		t.Fatalf("account over its burst, other address: wait %v, want (0, %v]", d, accountInterval)
	}
	if d := f.Wait("bob", "10.0.0.1"); d != 0 {
		t.Fatalf("another account from the same address under its burst: wait %v", d)
	}
	for i := range addrBurst {
		f.Fail(string(rune('a'+i))+"-user", "10.0.0.2")
	}
	if d := f.Wait("carol", "10.0.0.2"); d <= 0 || d > addrInterval {
		t.Fatalf("address over its burst: wait %v, want (0, %v]", d, addrInterval)
	}
}

func TestFailuresMemoryIsBounded(t *testing.T) {
	f := New()
	for i := range maxLimiters + 100 {
		f.Fail("", string(rune(i)))
	}
	if n := len(f.addr); n > maxLimiters+1 {
		t.Fatalf("%d address limiters kept, want at most %d", n, maxLimiters+1)
	}
}
