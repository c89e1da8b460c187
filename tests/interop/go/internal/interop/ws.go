package interop

import (
	"context"
	"io"

	"github.com/coder/websocket"
)

// WSConn adapts a WebSocket to the byte stream PROTOCOL.md asks for: every
// Write is one binary message; Read concatenates all messages (binary or
// text) regardless of boundaries; a close message (or a vanished
// connection after one) is EOF.
type WSConn struct {
	c   *websocket.Conn
	r   io.Reader // current message, nil between messages
	eof bool
}

// The library tears the connection down when a context given to a pending
// Read or Write is cancelled, which would skip the close handshake; so all
// I/O uses a context that never ends.
var bg = context.Background()

// NewWSConn wraps c, lifting the library's 32 KiB per-message read limit.
func NewWSConn(c *websocket.Conn) *WSConn {
	c.SetReadLimit(-1)
	return &WSConn{c: c}
}

func (w *WSConn) Read(p []byte) (int, error) {
	for !w.eof {
		if w.r == nil {
			_, r, err := w.c.Reader(bg)
			if err != nil {
				switch websocket.CloseStatus(err) {
				case websocket.StatusNormalClosure, websocket.StatusGoingAway, websocket.StatusNoStatusRcvd:
					w.eof = true
					continue
				}
				return 0, err
			}
			w.r = r
		}
		n, err := w.r.Read(p)
		if err == io.EOF {
			w.r = nil
			err = nil
		}
		if n > 0 || err != nil || len(p) == 0 {
			return n, err
		}
	}
	return 0, io.EOF
}

func (w *WSConn) Write(p []byte) (int, error) {
	if err := w.c.Write(bg, websocket.MessageBinary, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Close performs the close handshake (status 1000). The library bounds it
// to 5 s for writing the close message and 5 s for the reply.
func (w *WSConn) Close() error {
	return w.c.Close(websocket.StatusNormalClosure, "")
}
