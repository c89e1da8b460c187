// Package interop holds the parts shared by the interop peer and driver:
// the xorshift32 data generator, the stream operations of PROTOCOL.md,
// a WebSocket byte-stream adapter, a frame tap and stream reset.
package interop

import "encoding/binary"

// Gen produces the xorshift32 byte stream described in PROTOCOL.md.
// It is an io.Reader that never fails.
type Gen struct {
	x    uint32
	word [4]byte
	off  int // next unread byte of word; 4 means empty
}

// NewGen starts a generator at seed (0 is replaced by 1).
func NewGen(seed uint32) *Gen {
	if seed == 0 {
		seed = 1
	}
	return &Gen{x: seed, off: 4}
}

func (g *Gen) next() uint32 {
	x := g.x
	x ^= x << 13
	x ^= x >> 17
	x ^= x << 5
	g.x = x
	return x
}

// Read fills p with the next len(p) bytes of the stream.
func (g *Gen) Read(p []byte) (int, error) {
	i := 0
	for i < len(p) {
		if g.off == 4 {
			if len(p)-i >= 4 { // fast path: whole words straight into p
				binary.LittleEndian.PutUint32(p[i:], g.next())
				i += 4
				continue
			}
			binary.LittleEndian.PutUint32(g.word[:], g.next())
			g.off = 0
		}
		p[i] = g.word[g.off]
		g.off++
		i++
	}
	return len(p), nil
}
