package interop

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/hashicorp/yamux"
)

// ChunkSize bounds every write made by the openers (PROTOCOL.md: at most 16 KiB).
const ChunkSize = 16 << 10

// IsReset reports whether err means the stream was reset by the other side.
func IsReset(err error) bool { return errors.Is(err, yamux.ErrConnectionReset) }

// WriteGen writes m bytes of the generator started at seed, in chunks of at most ChunkSize.
func WriteGen(w io.Writer, m uint64, seed uint32) error {
	g := NewGen(seed)
	buf := make([]byte, ChunkSize)
	for m > 0 {
		n := uint64(len(buf))
		if m < n {
			n = m
		}
		g.Read(buf[:n])
		if _, err := w.Write(buf[:n]); err != nil {
			return fmt.Errorf("write: %w", err)
		}
		m -= n
	}
	return nil
}

// ExpectGen reads r to EOF and checks it carried exactly m generator bytes from seed.
func ExpectGen(r io.Reader, m uint64, seed uint32) error {
	g := NewGen(seed)
	buf := make([]byte, 32<<10)
	want := make([]byte, len(buf))
	var total uint64
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if total+uint64(n) > m {
				return fmt.Errorf("received more than the %d bytes expected", m)
			}
			g.Read(want[:n])
			if !bytes.Equal(buf[:n], want[:n]) {
				for i := range n {
					if buf[i] != want[i] {
						return fmt.Errorf("data mismatch at offset %d", total+uint64(i))
					}
				}
			}
			total += uint64(n)
		}
		if err == io.EOF {
			if total != m {
				return fmt.Errorf("EOF after %d of %d bytes", total, m)
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("read after %d of %d bytes: %w", total, m, err)
		}
	}
}

// ExpectEOF checks that r has nothing more to deliver.
func ExpectEOF(r io.Reader) error {
	var b [1]byte
	n, err := r.Read(b[:])
	switch {
	case n > 0:
		return errors.New("unexpected data where EOF was expected")
	case err == io.EOF:
		return nil
	case err == nil:
		return ExpectEOF(r)
	default:
		return fmt.Errorf("waiting for EOF: %w", err)
	}
}

// GenHeader is the payload of a G request: u64 n, u32 seed.
func GenHeader(n uint64, seed uint32) []byte {
	return binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint64(nil, n), seed)
}

// Open runs operation op (E, S or G) as the opener on a fresh stream st,
// with m bytes and the given generator seed. It writes the command byte itself.
func Open(st io.ReadWriteCloser, op byte, m uint64, seed uint32) error {
	switch op {
	case 'E':
		return openEcho(st, m, seed)
	case 'S':
		return openSink(st, m, seed)
	case 'G':
		return openGenerate(st, m, seed)
	}
	return fmt.Errorf("cannot open operation %q", op)
}

func openEcho(st io.ReadWriteCloser, m uint64, seed uint32) error {
	if _, err := st.Write([]byte{'E'}); err != nil {
		return err
	}
	werr := make(chan error, 1)
	go func() {
		err := WriteGen(st, m, seed)
		if err == nil {
			err = st.Close()
		}
		werr <- err
	}()
	if err := ExpectGen(st, m, seed); err != nil {
		return err // the writer may be stuck on a full window; it ends with the session
	}
	return <-werr
}

func openSink(st io.ReadWriteCloser, m uint64, seed uint32) error {
	h := sha256.New()
	if _, err := st.Write([]byte{'S'}); err != nil {
		return err
	}
	if err := WriteGen(io.MultiWriter(h, st), m, seed); err != nil {
		return err
	}
	if err := st.Close(); err != nil {
		return fmt.Errorf("close: %w", err)
	}
	var res [40]byte
	if _, err := io.ReadFull(st, res[:]); err != nil {
		return fmt.Errorf("reading sink result: %w", err)
	}
	if n := binary.BigEndian.Uint64(res[:8]); n != m {
		return fmt.Errorf("sink counted %d bytes, sent %d", n, m)
	}
	if !bytes.Equal(res[8:], h.Sum(nil)) {
		return errors.New("sink SHA-256 differs from the data sent")
	}
	return ExpectEOF(st)
}

func openGenerate(st io.ReadWriteCloser, m uint64, seed uint32) error {
	if _, err := st.Write(append([]byte{'G'}, GenHeader(m, seed)...)); err != nil {
		return err
	}
	if err := st.Close(); err != nil {
		return fmt.Errorf("close: %w", err)
	}
	return ExpectGen(st, m, seed)
}

// ReadCommand reads the command byte that starts every stream.
func ReadCommand(st io.Reader) (byte, error) {
	var b [1]byte
	if _, err := io.ReadFull(st, b[:]); err != nil {
		return 0, fmt.Errorf("reading command byte: %w", err)
	}
	return b[0], nil
}

// Respond performs the responder side of E, S, G and R on st, whose command
// byte cmd has already been read.
func Respond(st *yamux.Stream, cmd byte) error {
	switch cmd {
	case 'E':
		buf := make([]byte, 32<<10)
		for {
			n, err := st.Read(buf)
			if n > 0 {
				if _, werr := st.Write(buf[:n]); werr != nil {
					return fmt.Errorf("echo write: %w", werr)
				}
			}
			if err == io.EOF {
				return st.Close()
			}
			if err != nil {
				return fmt.Errorf("echo read: %w", err)
			}
		}
	case 'S':
		h := sha256.New()
		n, err := io.Copy(h, st)
		if err != nil {
			return fmt.Errorf("sink read: %w", err)
		}
		res := binary.BigEndian.AppendUint64(nil, uint64(n))
		if _, err := st.Write(h.Sum(res)); err != nil {
			return fmt.Errorf("sink write: %w", err)
		}
		return st.Close()
	case 'G':
		var hdr [12]byte
		if _, err := io.ReadFull(st, hdr[:]); err != nil {
			return fmt.Errorf("generate header: %w", err)
		}
		if err := WriteGen(st, binary.BigEndian.Uint64(hdr[:8]), binary.BigEndian.Uint32(hdr[8:])); err != nil {
			return err
		}
		return st.Close()
	case 'R':
		Reset(st)
		return nil
	}
	st.Close()
	return fmt.Errorf("unknown command byte %q", cmd)
}
