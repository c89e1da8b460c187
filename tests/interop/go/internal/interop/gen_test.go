package interop

import (
	"bytes"
	"testing"
)

func TestGenSeed1(t *testing.T) {
	b := make([]byte, 4)
	NewGen(1).Read(b)
	if !bytes.Equal(b, []byte{0x21, 0x20, 0x04, 0x00}) {
		t.Fatalf("seed 1 gave % x", b)
	}
	z := make([]byte, 4)
	NewGen(0).Read(z)
	if !bytes.Equal(z, b) {
		t.Fatalf("seed 0 should behave as seed 1")
	}
}

func TestGenChunking(t *testing.T) {
	whole := make([]byte, 1001)
	NewGen(7).Read(whole)
	g := NewGen(7)
	var parts []byte
	for _, n := range []int{1, 2, 3, 5, 8, 13, 400, 569} {
		p := make([]byte, n)
		g.Read(p)
		parts = append(parts, p...)
	}
	if !bytes.Equal(whole, parts) {
		t.Fatal("chunked reads differ from one read")
	}
}
