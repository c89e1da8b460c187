package interop

import (
	"encoding/binary"
	"io"
)

// Yamux frame types and flags (the spec's numbering).
const (
	TypeData         = 0
	TypeWindowUpdate = 1
	TypePing         = 2
	TypeGoAway       = 3

	FlagSYN = 1
	FlagACK = 2
	FlagFIN = 4
	FlagRST = 8
)

// Frame is a decoded 12-byte yamux header.
type Frame struct {
	Type   byte
	Flags  uint16
	Stream uint32
	Length uint32
}

// parser follows frame boundaries in a byte stream cut at arbitrary points.
type parser struct {
	hdr  [12]byte
	n    int    // header bytes collected
	skip uint64 // data payload bytes still to pass
	on   func(Frame)
}

func (p *parser) feed(b []byte) {
	for len(b) > 0 {
		if p.skip > 0 {
			k := min(uint64(len(b)), p.skip)
			p.skip -= k
			b = b[k:]
			continue
		}
		c := copy(p.hdr[p.n:], b)
		p.n += c
		b = b[c:]
		if p.n < len(p.hdr) {
			return
		}
		p.n = 0
		f := Frame{
			Type:   p.hdr[1],
			Flags:  binary.BigEndian.Uint16(p.hdr[2:4]),
			Stream: binary.BigEndian.Uint32(p.hdr[4:8]),
			Length: binary.BigEndian.Uint32(p.hdr[8:12]),
		}
		if f.Type == TypeData {
			p.skip = uint64(f.Length)
		}
		p.on(f)
	}
}

// Tap wraps the connection under a yamux session and reports every frame
// header passing in either direction, without altering the bytes. Each
// callback runs on the goroutine doing the Read or Write (one each in yamux).
type Tap struct {
	io.ReadWriteCloser
	in, out parser
}

// NewTap wraps c; onRead sees frames received, onWrite frames sent (either may be nil).
func NewTap(c io.ReadWriteCloser, onRead, onWrite func(Frame)) *Tap {
	nop := func(Frame) {}
	if onRead == nil {
		onRead = nop
	}
	if onWrite == nil {
		onWrite = nop
	}
	return &Tap{ReadWriteCloser: c, in: parser{on: onRead}, out: parser{on: onWrite}}
}

func (t *Tap) Read(b []byte) (int, error) {
	n, err := t.ReadWriteCloser.Read(b)
	t.in.feed(b[:n])
	return n, err
}

// Write reports the frames before writing them, so the report is never later
// than the other side's reaction to them.
func (t *Tap) Write(b []byte) (int, error) {
	t.out.feed(b)
	return t.ReadWriteCloser.Write(b)
}
