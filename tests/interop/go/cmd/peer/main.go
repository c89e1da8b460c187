// Command peer is the hashicorp/yamux interop peer described in
// tests/interop/PROTOCOL.md: it dials the driver, runs a yamux session and
// answers the streams the driver opens.
package main

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"agentrelay/interop/internal/interop"

	"github.com/coder/websocket"
	"github.com/hashicorp/yamux"
)

var logf = log.New(os.Stderr, "go-peer: ", log.Lmicroseconds).Printf

func main() {
	fs := flag.NewFlagSet("peer", flag.ContinueOnError)
	role := fs.String("role", "", "yamux role: client or server")
	transport := fs.String("transport", "", "tcp or ws")
	connect := fs.String("connect", "", "driver address, 127.0.0.1:PORT")
	maxWindow := fs.Uint("max-window", 0, "maximum stream receive window in bytes (default: library default)")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(1)
	}
	if err := run(*role, *transport, *connect, uint32(*maxWindow)); err != nil {
		logf("FAILED: %v", err)
		os.Exit(1)
	}
	logf("done")
}

func dial(transport, addr string) (io.ReadWriteCloser, error) {
	switch transport {
	case "tcp":
		return net.DialTimeout("tcp", addr, 5*time.Second)
	case "ws":
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel() // only bounds the handshake
		c, _, err := websocket.Dial(ctx, "ws://"+addr+"/mux",
			&websocket.DialOptions{CompressionMode: websocket.CompressionDisabled})
		if err != nil {
			return nil, err
		}
		return interop.NewWSConn(c), nil
	}
	return nil, fmt.Errorf("unknown transport %q", transport)
}

type peer struct {
	sess   *yamux.Session
	active atomic.Int64 // streams being handled
	failed atomic.Int64 // operations that failed
}

func run(role, transport, addr string, maxWindow uint32) error {
	if role != "client" && role != "server" {
		return fmt.Errorf("--role must be client or server, not %q", role)
	}
	conn, err := dial(transport, addr)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}

	// yamux gives no notice of a received Go Away, so watch the frames.
	goAway := make(chan uint32, 1)
	tap := interop.NewTap(conn, func(f interop.Frame) {
		if f.Type == interop.TypeGoAway {
			select {
			case goAway <- f.Length:
			default:
			}
		}
	}, nil)

	cfg := yamux.DefaultConfig()
	cfg.LogOutput = os.Stderr
	if maxWindow != 0 {
		cfg.MaxStreamWindowSize = maxWindow
	}
	var sess *yamux.Session
	if role == "client" {
		sess, err = yamux.Client(tap, cfg)
	} else {
		sess, err = yamux.Server(tap, cfg)
	}
	if err != nil {
		return err
	}
	p := &peer{sess: sess}
	logf("connected (%s, %s, %s)", role, transport, addr)

	// A received Go Away ends the session once the streams in progress are done.
	go func() {
		select {
		case code := <-goAway:
			logf("received Go Away (code %d); closing once %d stream(s) finish", code, p.active.Load())
			for p.active.Load() > 0 && !sess.IsClosed() {
				time.Sleep(10 * time.Millisecond)
			}
			sess.Close()
		case <-sess.CloseChan():
		}
	}()

	var endErr error
	for {
		st, err := sess.AcceptStream()
		if err != nil {
			endErr = err
			break
		}
		p.active.Add(1)
		go func() {
			defer p.active.Add(-1)
			p.handle(st)
		}()
	}
	logf("session ended: %v", endErr)

	// Streams still running see the shutdown at once; give them a moment to report.
	deadline := time.Now().Add(3 * time.Second)
	for p.active.Load() > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	switch {
	case isProtocolError(endErr):
		return fmt.Errorf("session ended with a protocol error: %v", endErr)
	case p.active.Load() > 0:
		return fmt.Errorf("%d operation(s) still running at exit", p.active.Load())
	case p.failed.Load() > 0:
		return fmt.Errorf("%d operation(s) failed", p.failed.Load())
	}
	return nil
}

// isProtocolError tells a session torn down by a yamux violation apart from
// an ordinary end of connection (EOF, reset, WebSocket close, our own Close).
func isProtocolError(err error) bool {
	for _, e := range []error{yamux.ErrInvalidVersion, yamux.ErrInvalidMsgType,
		yamux.ErrRecvWindowExceeded, yamux.ErrDuplicateStream, yamux.ErrUnexpectedFlag,
		yamux.ErrKeepAliveTimeout} {
		if errors.Is(err, e) {
			return true
		}
	}
	// Go Away with an error code is reported with these unexported messages.
	msg := fmt.Sprint(err)
	return strings.Contains(msg, "yamux protocol error") ||
		strings.Contains(msg, "remote yamux internal error") ||
		strings.Contains(msg, "unexpected go away")
}

func (p *peer) handle(st *yamux.Stream) {
	cmd, err := interop.ReadCommand(st)
	if err == nil {
		switch cmd {
		case 'P':
			err = p.ping(st)
		case 'O':
			err = p.open(st)
		case 'X':
			err = p.goAway(st)
		default:
			err = interop.Respond(st, cmd)
		}
	}
	switch {
	case err == nil:
	case interop.IsReset(err):
		// The driver resets streams on purpose (scenario "reset").
		logf("stream %d (%q): reset by the driver", st.StreamID(), cmd)
	default:
		p.failed.Add(1)
		logf("stream %d (%q) failed: %v", st.StreamID(), cmd, err)
	}
}

// reply writes a one-line answer and closes the stream; an ERR answer is
// also returned as the operation's error.
func reply(st *yamux.Stream, opErr error) error {
	msg := "OK\n"
	if opErr != nil {
		msg = "ERR " + strings.ReplaceAll(opErr.Error(), "\n", " ") + "\n"
	}
	if _, err := st.Write([]byte(msg)); err != nil {
		return errors.Join(opErr, err)
	}
	return errors.Join(opErr, st.Close())
}

func (p *peer) ping(st *yamux.Stream) error {
	var err error
	for i := range 3 {
		var rtt time.Duration
		if rtt, err = p.sess.Ping(); err != nil {
			err = fmt.Errorf("ping %d: %w", i+1, err)
			break
		}
		logf("ping %d: rtt %v", i+1, rtt)
	}
	return reply(st, err)
}

func (p *peer) open(st *yamux.Stream) error {
	var hdr [13]byte
	if _, err := io.ReadFull(st, hdr[:]); err != nil {
		return fmt.Errorf("reading O header: %w", err)
	}
	op, k, m := hdr[0], binary.BigEndian.Uint32(hdr[1:5]), binary.BigEndian.Uint64(hdr[5:])
	if op != 'E' && op != 'S' && op != 'G' {
		return reply(st, fmt.Errorf("O: unknown operation %q", op))
	}
	errs := make([]error, k)
	var wg sync.WaitGroup
	for i := range k {
		wg.Go(func() {
			s, err := p.sess.OpenStream()
			if err == nil {
				err = interop.Open(s, op, m, i+1)
			}
			if err != nil {
				errs[i] = fmt.Errorf("stream %d of %d (%c): %w", i, k, op, err)
			}
		})
	}
	wg.Wait()
	return reply(st, errors.Join(errs...))
}

func (p *peer) goAway(st *yamux.Stream) error {
	// GoAway only announces it: the session and its open streams keep working.
	return reply(st, p.sess.GoAway())
}
