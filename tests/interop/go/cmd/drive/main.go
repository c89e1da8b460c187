// Command drive runs the scenarios of tests/interop/PROTOCOL.md against an
// interop peer program, playing the driver's side with hashicorp/yamux.
//
//	drive [--role client,server] [--transport tcp,ws] [--scenario all|NAME[,NAME]] [-v] -- PEER ARGS...
//
// --role is the driver's own yamux role; the peer gets the other one. Each
// scenario runs on a fresh connection with a fresh peer process, started as
// PEER ARGS... --role R --transport T --connect 127.0.0.1:PORT [--max-window N].
package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"agentrelay/interop/internal/interop"

	"github.com/coder/websocket"
	"github.com/hashicorp/yamux"
)

const (
	KiB             = 1 << 10
	MiB             = 1 << 20
	defaultWindow   = 256 * KiB
	bigWindow       = 16 * MiB
	connectTimeout  = 15 * time.Second // peer start-up until it connects
	scenarioTimeout = 30 * time.Second
	exitTimeout     = 6 * time.Second // the spec allows 5 s after the connection closes
)

var traceFrames int

type scenario struct {
	name      string
	bigWindow bool // peer gets --max-window 16 MiB, the driver uses 16 MiB too
	run       func(*env) error
}

var scenarios = []scenario{
	{"basic", false, basic},
	{"concurrent", false, concurrent},
	{"big", false, big},
	{"half-close", false, halfClose},
	{"reset", false, reset},
	{"window-growth", true, windowGrowth},
	{"ping", false, ping},
	{"peer-opens", false, peerOpens},
	{"go-away", false, goAway},
	{"close", false, closeScenario},
}

func main() {
	fs := flag.NewFlagSet("drive", flag.ContinueOnError)
	roles := fs.String("role", "client,server", "driver yamux role(s): client, server or both comma-separated")
	transports := fs.String("transport", "tcp,ws", "transport(s): tcp, ws or both comma-separated")
	names := fs.String("scenario", "all", "all, or comma-separated scenario names or numbers (1-10)")
	verbose := fs.Bool("v", false, "print driver and peer logs for passing scenarios too")
	fs.IntVar(&traceFrames, "trace", 0, "log the first N frame headers in each direction")
	fs.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: drive [flags] -- PEER [ARGS...]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	peerCmd := fs.Args()
	if len(peerCmd) == 0 {
		fs.Usage()
		os.Exit(2)
	}
	selected, err := selectScenarios(*names)
	if err != nil {
		fmt.Fprintln(os.Stderr, "drive:", err)
		os.Exit(2)
	}

	passed, failed := 0, 0
	for _, t := range strings.Split(*transports, ",") {
		for _, r := range strings.Split(*roles, ",") {
			if (t != "tcp" && t != "ws") || (r != "client" && r != "server") {
				fmt.Fprintf(os.Stderr, "drive: bad --role %q or --transport %q\n", r, t)
				os.Exit(2)
			}
			for _, sc := range selected {
				start := time.Now()
				note, logs, err := runScenario(sc, r, t, peerCmd)
				label := fmt.Sprintf("%-3s driver=%-6s peer=%-6s %-14s %6.2fs", t, r, other(r), sc.name, time.Since(start).Seconds())
				if err != nil {
					failed++
					fmt.Printf("FAIL %s  %v\n", label, err)
				} else {
					passed++
					fmt.Printf("PASS %s  %s\n", label, note)
				}
				if err != nil || *verbose {
					for _, l := range strings.Split(strings.TrimRight(logs, "\n"), "\n") {
						fmt.Printf("     | %s\n", l)
					}
				}
			}
		}
	}
	fmt.Printf("%d passed, %d failed\n", passed, failed)
	if failed > 0 || passed == 0 {
		os.Exit(1)
	}
}

func other(role string) string {
	if role == "client" {
		return "server"
	}
	return "client"
}

func selectScenarios(spec string) ([]scenario, error) {
	if spec == "all" {
		return scenarios, nil
	}
	var out []scenario
next:
	for _, name := range strings.Split(spec, ",") {
		for i, sc := range scenarios {
			if name == sc.name || name == strconv.Itoa(i+1) {
				out = append(out, sc)
				continue next
			}
		}
		return nil, fmt.Errorf("unknown scenario %q", name)
	}
	return out, nil
}

// logBuf collects the driver's yamux log and the peer's output of one scenario.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b.Write(p)
	return len(p), nil
}

func (l *logBuf) Printf(format string, args ...any) {
	fmt.Fprintf(l, "drive: "+format+"\n", args...)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// listen serves one incoming connection (plain TCP, or a WebSocket at /mux).
func listen(transport string) (addr string, conns <-chan io.ReadWriteCloser, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, nil, err
	}
	ch := make(chan io.ReadWriteCloser, 1)
	if transport == "tcp" {
		go func() {
			if c, err := ln.Accept(); err == nil {
				ch <- c
			}
		}()
		return ln.Addr().String(), ch, func() { ln.Close() }, nil
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/mux", func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{CompressionMode: websocket.CompressionDisabled})
		if err != nil {
			return
		}
		select {
		case ch <- interop.NewWSConn(c):
		default:
			c.Close(websocket.StatusPolicyViolation, "one connection per scenario")
		}
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	return ln.Addr().String(), ch, func() { srv.Close() }, nil
}

// env is the driver's state for one scenario.
type env struct {
	sess    *yamux.Session
	log     *logBuf
	closing atomic.Bool
	note    []string

	mu         sync.Mutex
	credit     map[uint32]int64 // window-update deltas received, per stream
	sent       map[uint32]int64 // data bytes sent, per stream
	maxWin     map[uint32]int64 // largest send window seen, per stream
	pings      int              // ping requests received from the peer
	served     map[byte]int     // peer-opened streams, per command
	goAwaySent bool
	traced     [2]int       // frames logged, received and sent
	step       atomic.Value // string: the last step started, for timeout messages
	failures   []string     // errors answering peer-opened streams
}

func (e *env) notef(format string, args ...any) {
	e.locked(func() { e.note = append(e.note, fmt.Sprintf(format, args...)) })
}

// Send window of a stream, reconstructed from the frames on the wire.
func (e *env) updateWindow(id uint32) {
	if w := defaultWindow + e.credit[id] - e.sent[id]; w > e.maxWin[id] {
		e.maxWin[id] = w
	}
}

var frameTypes = []string{"Data", "WindowUpdate", "Ping", "GoAway"}

// trace logs a frame header while under the --trace budget; dir 0 is received.
func (e *env) trace(dir int, f interop.Frame) {
	if e.traced[dir] >= traceFrames {
		return
	}
	e.traced[dir]++
	typ := fmt.Sprint(f.Type)
	if int(f.Type) < len(frameTypes) {
		typ = frameTypes[f.Type]
	}
	var flags []string
	for i, name := range []string{"SYN", "ACK", "FIN", "RST"} {
		if f.Flags&(1<<i) != 0 {
			flags = append(flags, name)
		}
	}
	e.log.Printf("%s %s stream=%d flags=%s length=%d", []string{"<-", "->"}[dir], typ, f.Stream, strings.Join(flags, "|"), f.Length)
}

func (e *env) onRead(f interop.Frame) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.trace(0, f)
	switch {
	case f.Type == interop.TypeWindowUpdate:
		e.credit[f.Stream] += int64(f.Length)
		e.updateWindow(f.Stream)
	case f.Type == interop.TypePing && f.Flags&interop.FlagSYN != 0:
		e.pings++
	}
}

func (e *env) onWrite(f interop.Frame) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.trace(1, f)
	switch f.Type {
	case interop.TypeData:
		e.sent[f.Stream] += int64(f.Length)
		e.updateWindow(f.Stream)
	case interop.TypeGoAway:
		e.goAwaySent = true
	}
}

func (e *env) locked(f func()) {
	e.mu.Lock()
	defer e.mu.Unlock()
	f()
}

// serve answers the streams the peer opens, with E, S, G and R.
func (e *env) serve() {
	for {
		st, err := e.sess.AcceptStream()
		if err != nil {
			return
		}
		go func() {
			cmd, err := interop.ReadCommand(st)
			if err == nil {
				e.locked(func() { e.served[cmd]++ })
				err = interop.Respond(st, cmd)
			}
			if err != nil && !e.closing.Load() {
				e.locked(func() {
					e.failures = append(e.failures, fmt.Sprintf("answering peer stream %d (%q): %v", st.StreamID(), cmd, err))
				})
			}
		}()
	}
}

// shutdown sends Go Away (code 0) and closes the session and connection.
func (e *env) shutdown() {
	e.closing.Store(true)
	e.sess.GoAway()
	e.sess.Close()
}

func runScenario(sc scenario, role, transport string, peerCmd []string) (note, logs string, err error) {
	lb := &logBuf{}
	addr, conns, stop, err := listen(transport)
	if err != nil {
		return "", "", err
	}
	defer stop()

	args := append(append([]string{}, peerCmd[1:]...),
		"--role", other(role), "--transport", transport, "--connect", addr)
	if sc.bigWindow {
		args = append(args, "--max-window", strconv.Itoa(bigWindow))
	}
	cmd := exec.Command(peerCmd[0], args...)
	cmd.Stdout, cmd.Stderr = lb, lb
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // so a wrapper script's children die too
	cmd.WaitDelay = time.Second
	lb.Printf("starting %s", strings.Join(cmd.Args, " "))
	if err := cmd.Start(); err != nil {
		return "", lb.String(), fmt.Errorf("starting peer: %w", err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	defer func() {
		select {
		case <-exited:
		default:
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		logs = lb.String()
	}()

	var conn io.ReadWriteCloser
	select {
	case conn = <-conns:
	case <-exited:
		return "", "", fmt.Errorf("peer exited before connecting (%v)", waitErr)
	case <-time.After(connectTimeout):
		return "", "", fmt.Errorf("peer did not connect within %v", connectTimeout)
	}

	e := &env{log: lb, credit: map[uint32]int64{}, sent: map[uint32]int64{},
		maxWin: map[uint32]int64{}, served: map[byte]int{}}
	e.step.Store("none")
	cfg := yamux.DefaultConfig()
	cfg.LogOutput = lb
	if sc.bigWindow {
		cfg.MaxStreamWindowSize = bigWindow
	}
	tap := interop.NewTap(conn, e.onRead, e.onWrite)
	if role == "client" {
		e.sess, err = yamux.Client(tap, cfg)
	} else {
		e.sess, err = yamux.Server(tap, cfg)
	}
	if err != nil {
		conn.Close()
		return "", "", err
	}
	go e.serve()

	done := make(chan error, 1)
	go func() { done <- sc.run(e) }()
	select {
	case err = <-done:
	case <-exited: // fine only if the scenario was already closing the session
		select {
		case err = <-done:
		case <-time.After(3 * time.Second):
			err = errors.New("scenario stuck")
		}
		if err != nil || !e.closing.Load() {
			err = fmt.Errorf("peer exited during the scenario (%v): %v", waitErr, err)
		}
	case <-time.After(scenarioTimeout):
		err = fmt.Errorf("scenario timed out after %v (last step started: %v)", scenarioTimeout, e.step.Load())
	}
	e.shutdown()
	lb.Printf("session closed")
	e.locked(func() { note = strings.Join(e.note, "; ") })
	if err != nil {
		return note, "", err
	}

	select {
	case <-exited:
	case <-time.After(exitTimeout):
		return note, "", fmt.Errorf("peer still running %v after the connection closed", exitTimeout)
	}
	if waitErr != nil {
		return note, "", fmt.Errorf("peer exit: %v", waitErr)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.failures) > 0 {
		return note, "", errors.New(strings.Join(e.failures, "; "))
	}
	return note, "", nil
}

// ---- scenario helpers ----

// op opens a stream and runs E, S or G on it as the opener.
func (e *env) op(op byte, m uint64, seed uint32) error {
	st, err := e.sess.OpenStream()
	if err != nil {
		return fmt.Errorf("open stream for %c: %w", op, err)
	}
	e.step.Store(fmt.Sprintf("%c %d bytes on stream %d", op, m, st.StreamID()))
	if err := interop.Open(st, op, m, seed); err != nil {
		return fmt.Errorf("%c %d bytes (stream %d): %w", op, m, st.StreamID(), err)
	}
	return nil
}

// request opens a stream, sends cmd and its arguments, FINs, and returns the whole reply.
func (e *env) request(cmd byte, args ...byte) (string, error) {
	st, err := e.sess.OpenStream()
	if err != nil {
		return "", fmt.Errorf("open stream for %c: %w", cmd, err)
	}
	e.step.Store(fmt.Sprintf("%c request on stream %d", cmd, st.StreamID()))
	if _, err := st.Write(append([]byte{cmd}, args...)); err != nil {
		return "", fmt.Errorf("%c: write: %w", cmd, err)
	}
	if err := st.Close(); err != nil {
		return "", fmt.Errorf("%c: close: %w", cmd, err)
	}
	st.SetReadDeadline(time.Now().Add(20 * time.Second))
	b, err := io.ReadAll(st)
	if err != nil {
		return string(b), fmt.Errorf("%c: reading reply: %w", cmd, err)
	}
	return string(b), nil
}

// parallel runs n jobs at once and returns their errors joined.
func parallel(n int, job func(i int) error) error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { errs[i] = job(i) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// ---- scenarios ----

func basic(e *env) error {
	if err := e.op('E', 1*KiB, 1); err != nil {
		return err
	}
	if err := e.op('S', 1*MiB, 2); err != nil {
		return err
	}
	return e.op('G', 1*MiB, 3)
}

func concurrent(e *env) error {
	return parallel(64, func(i int) error { return e.op("ESG"[i%3], 256*KiB, uint32(i+1)) })
}

func big(e *env) error {
	if err := e.op('S', 64*MiB, 4); err != nil {
		return err
	}
	return e.op('G', 64*MiB, 5)
}

func halfClose(e *env) error {
	// G: FIN straight after the header, then read everything.
	st, err := e.sess.OpenStream()
	if err != nil {
		return err
	}
	if _, err := st.Write(append([]byte{'G'}, interop.GenHeader(1*MiB, 6)...)); err != nil {
		return err
	}
	if err := st.Close(); err != nil {
		return err
	}
	if err := interop.ExpectGen(st, 1*MiB, 6); err != nil {
		return fmt.Errorf("G after FIN: %w", err)
	}
	// E: send everything and FIN before reading any of the echo. The size
	// stays below one default window so the echo cannot stall on it.
	const n = 200 * KiB
	if st, err = e.sess.OpenStream(); err != nil {
		return err
	}
	if _, err := st.Write([]byte{'E'}); err != nil {
		return err
	}
	if err := interop.WriteGen(st, n, 7); err != nil {
		return err
	}
	if err := st.Close(); err != nil {
		return err
	}
	if err := interop.ExpectGen(st, n, 7); err != nil {
		return fmt.Errorf("E after FIN: %w", err)
	}
	return nil
}

func reset(e *env) error {
	// R: the peer resets; our read must fail with a reset, not EOF or data.
	st, err := e.sess.OpenStream()
	if err != nil {
		return err
	}
	if _, err := st.Write([]byte{'R'}); err != nil {
		return err
	}
	st.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := st.Read(make([]byte, 16))
	switch {
	case interop.IsReset(err):
	case n > 0:
		return fmt.Errorf("R: peer wrote %d bytes instead of resetting", n)
	case err == io.EOF:
		return errors.New("R: got EOF (FIN) instead of a reset")
	default:
		return fmt.Errorf("R: expected a reset error, got %v", err)
	}

	// We reset an E stream in mid-transfer.
	if st, err = e.sess.OpenStream(); err != nil {
		return err
	}
	if _, err := st.Write([]byte{'E'}); err != nil {
		return err
	}
	if err := interop.WriteGen(st, 64*KiB, 8); err != nil {
		return err
	}
	got := make([]byte, 16*KiB)
	st.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(st, got); err != nil {
		return fmt.Errorf("E before reset: %w", err)
	}
	want := make([]byte, len(got))
	interop.NewGen(8).Read(want)
	if !bytes.Equal(got, want) {
		return errors.New("E before reset: echo differs")
	}
	interop.Reset(st)

	// The session still works.
	return e.op('E', 64*KiB, 9)
}

func windowGrowth(e *env) error {
	st, err := e.sess.OpenStream()
	if err != nil {
		return err
	}
	if err := interop.Open(st, 'S', 64*MiB, 10); err != nil {
		return fmt.Errorf("S 64 MiB: %w", err)
	}
	var w int64
	e.locked(func() { w = e.maxWin[st.StreamID()] })
	e.notef("max send window %d KiB", w/KiB)
	if w <= defaultWindow {
		return fmt.Errorf("send window never grew above %d bytes (peer has --max-window %d)", defaultWindow, bigWindow)
	}
	// Our receive window is 16 MiB here.
	return e.op('G', 64*MiB, 11)
}

func ping(e *env) error {
	rtt, err := e.sess.Ping()
	if err != nil {
		return fmt.Errorf("ping: %w", err)
	}
	e.notef("rtt %v", rtt)
	var before, after int
	e.locked(func() { before = e.pings })
	r, err := e.request('P')
	if err != nil {
		return err
	}
	if r != "OK\n" {
		return fmt.Errorf("P: reply %q", r)
	}
	e.locked(func() { after = e.pings })
	if after-before < 3 {
		return fmt.Errorf("P: peer sent %d ping(s), want 3", after-before)
	}
	return nil
}

func peerOpens(e *env) error {
	const k, m = 16, 300000
	for _, op := range []byte("ESG") {
		var before, after int
		e.locked(func() { before = e.served[op] })
		args := binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint32([]byte{op}, k), m)
		r, err := e.request('O', args...)
		if err != nil {
			return err
		}
		if r != "OK\n" {
			return fmt.Errorf("O %c: reply %q", op, r)
		}
		e.locked(func() { after = e.served[op] })
		if after-before != k {
			return fmt.Errorf("O %c: peer opened %d streams, want %d", op, after-before, k)
		}
	}
	return nil // errors answering the peer's streams are checked by runScenario
}

func goAway(e *env) error {
	// An E stream opened before the Go Away must keep working after it.
	const half = 32 * KiB
	st, err := e.sess.OpenStream()
	if err != nil {
		return err
	}
	if _, err := st.Write([]byte{'E'}); err != nil {
		return err
	}
	g, want := interop.NewGen(12), interop.NewGen(12)
	buf := make([]byte, half)
	check := func() error {
		got, exp := make([]byte, half), make([]byte, half)
		if _, err := io.ReadFull(st, got); err != nil {
			return err
		}
		want.Read(exp)
		if !bytes.Equal(got, exp) {
			return errors.New("echo differs")
		}
		return nil
	}
	g.Read(buf)
	if _, err := st.Write(buf); err != nil {
		return err
	}
	if err := check(); err != nil {
		return fmt.Errorf("E before X: %w", err)
	}

	r, err := e.request('X')
	if err != nil {
		return err
	}
	switch r {
	case "UNSUPPORTED\n":
		e.notef("peer: Go Away UNSUPPORTED")
	case "OK\n":
		if s, err := e.sess.OpenStream(); err == nil {
			interop.Reset(s)
			return errors.New("X: open_stream still succeeds after the peer's Go Away")
		} else if !errors.Is(err, yamux.ErrRemoteGoAway) {
			return fmt.Errorf("X: open_stream failed with %v, want a go-away error", err)
		}
	default:
		return fmt.Errorf("X: reply %q", r)
	}

	g.Read(buf)
	if _, err := st.Write(buf); err != nil {
		return fmt.Errorf("E after X: %w", err)
	}
	if err := st.Close(); err != nil {
		return err
	}
	if err := check(); err != nil {
		return fmt.Errorf("E after X: %w", err)
	}
	return interop.ExpectEOF(st)
}

func closeScenario(e *env) error {
	if err := e.op('E', 1*KiB, 13); err != nil {
		return err
	}
	// Go Away first; a peer may end the session on it alone. Then close.
	e.closing.Store(true)
	if err := e.sess.GoAway(); err != nil {
		// GoAway waits for the write to be confirmed; a peer that closes at
		// once on Go Away can shut the session down before that happens.
		var sent bool
		e.locked(func() { sent = e.goAwaySent })
		if !sent || !errors.Is(err, yamux.ErrSessionShutdown) {
			return fmt.Errorf("sending Go Away: %w", err)
		}
	}
	select {
	case <-e.sess.CloseChan():
		e.notef("peer closed the connection on Go Away")
	case <-time.After(time.Second):
		e.notef("peer kept the connection open after Go Away")
	}
	return nil
}
