//! Interop peer built on `tokio-yamux` (the crate the reference relay uses).
//!
//! It implements the peer side of `tests/interop/PROTOCOL.md`: dial the driver over TCP or a
//! WebSocket, run a yamux session with the library's defaults (except the maximum stream
//! window, from `--max-window`, and a short keepalive interval, see below), and answer the
//! driver's streams by their first byte.
//!
//! Things tokio-yamux 0.3.20 cannot do, and what this peer does instead:
//! - `P` (ping): the crate has no public way to send a ping on request (`Session::send_ping` is
//!   private; `Control` only opens streams and closes). It does send keepalive pings by itself,
//!   and with its `metrics` feature it records the `yamux.ping_latency` histogram each time one
//!   of its pings is acknowledged. So the peer runs keepalive every [`KEEPALIVE_INTERVAL`]
//!   (100 ms instead of the default 30 s), installs [`PingRecorder`] to count those records,
//!   and `P` waits for [`PINGS_FOR_P`] acknowledgements that arrive after the `P` stream
//!   (at most [`PING_WAIT`]); that is a real ping round trip with the driver, 3 times.
//! - Go Away without closing *is* possible: `Session::send_go_away(&mut self, cx)` is public,
//!   so the task that drives the session calls it when an `X` stream asks for it.
//! - Reset: there is no explicit reset call; dropping a `StreamHandle` that has not been closed
//!   sends a window-update frame with the RST flag, which is what `R` does.
//!
//! Library quirk worked around here: a `StreamHandle` only takes frames (data *and* window
//! updates) off its channel from the read path, and `poll_write` drains that channel without
//! registering for wake-ups. A task blocked in a write on a full send window would therefore
//! never learn of the window update that unblocks it. [`Driven`] wraps the handle and, whenever
//! a write is pending, peeks (`StreamHandle::poll_peek`), which drains the channel and registers
//! the task's waker. Readers and writers of one stream always run in the same task.
//!
//! Library bug this peer can only report: once a stream has received the remote's FIN, its
//! handle stops taking frames off its channel, so window updates are never applied and it can
//! send at most the send window it had at that moment (256 KiB by default). A responder `G`
//! whose opener FINs after the header (as PROTOCOL.md allows) therefore cannot send more than
//! that; [`Driven`] detects the condition (remote closed, send window 0) and fails the write.

use std::{
    future::poll_fn,
    io,
    pin::Pin,
    process::ExitCode,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    task::{Context, Poll, ready},
    time::{Duration, Instant},
};

use futures::{Sink, Stream};
use metrics::{
    Counter, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder, SharedString, Unit,
};
use sha2::{Digest, Sha256};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf},
    net::TcpStream,
    sync::{mpsc, oneshot, watch},
    task::JoinSet,
};
use tokio_tungstenite::{
    WebSocketStream, client_async_with_config,
    tungstenite::{self, Bytes, Message, protocol::WebSocketConfig},
};
use tokio_yamux::{Config, Control, Session, StreamHandle, stream::StreamState};

/// Chunk size for the data the peer generates as a responder (`G`): one write, one frame.
const RESPONDER_CHUNK: usize = 64 * 1024;
/// Chunk size for the streams the peer opens (`O`), as PROTOCOL.md asks: at most 16 KiB.
const OPENER_CHUNK: usize = 16 * 1024;
/// How long to wait for running operations once the session has ended (must exit within 5 s).
const DRAIN_GRACE: Duration = Duration::from_secs(3);
/// tokio-yamux's keepalive interval: short, because its keepalive pings are what `P` waits for.
const KEEPALIVE_INTERVAL: Duration = Duration::from_millis(100);
/// Acknowledged pings `P` waits for (PROTOCOL.md: "pings the session 3 times").
const PINGS_FOR_P: u64 = 3;
/// How long `P` waits for them.
const PING_WAIT: Duration = Duration::from_secs(5);
/// The histogram tokio-yamux (feature `metrics`) records once per acknowledged ping it sent.
const PING_LATENCY_METRIC: &str = "yamux.ping_latency";

macro_rules! log {
    ($($arg:tt)*) => {
        eprintln!("rust-peer: {}", format_args!($($arg)*))
    };
}

// ---------------------------------------------------------------------------------------------
// Command line

struct Args {
    client: bool,
    ws: bool,
    addr: String,
    max_window: Option<u32>,
}

const USAGE: &str = "usage: rust-peer --role client|server --transport tcp|ws \
                     --connect 127.0.0.1:PORT [--max-window BYTES]";

fn parse_args() -> Result<Args, String> {
    let mut role = None;
    let mut transport = None;
    let mut addr = None;
    let mut max_window = None;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--role" => role = Some(value()?),
            "--transport" => transport = Some(value()?),
            "--connect" => addr = Some(value()?),
            "--max-window" => {
                let v = value()?;
                let n: u32 = v
                    .parse()
                    .map_err(|_| format!("--max-window: not a u32: {v}"))?;
                if n < tokio_yamux::config::INITIAL_STREAM_WINDOW {
                    return Err(format!(
                        "--max-window must be at least {} (tokio-yamux asserts it)",
                        tokio_yamux::config::INITIAL_STREAM_WINDOW
                    ));
                }
                max_window = Some(n);
            }
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let client = match role.as_deref() {
        Some("client") => true,
        Some("server") => false,
        _ => return Err("--role must be client or server".into()),
    };
    let ws = match transport.as_deref() {
        Some("tcp") => false,
        Some("ws") => true,
        _ => return Err("--transport must be tcp or ws".into()),
    };
    let addr = addr.ok_or("--connect 127.0.0.1:PORT is required")?;
    Ok(Args {
        client,
        ws,
        addr,
        max_window,
    })
}

// ---------------------------------------------------------------------------------------------
// Data generator (xorshift32, little-endian words, truncated last word)

struct Gen {
    x: u32,
    word: [u8; 4],
    used: usize,
}

impl Gen {
    fn new(seed: u32) -> Gen {
        Gen {
            x: if seed == 0 { 1 } else { seed },
            word: [0; 4],
            used: 4,
        }
    }

    fn next_word(&mut self) -> [u8; 4] {
        let mut x = self.x;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.x = x;
        x.to_le_bytes()
    }

    /// Fills `out` with the next bytes of the stream; successive calls continue the stream.
    fn fill(&mut self, out: &mut [u8]) {
        let mut i = 0;
        while self.used < 4 && i < out.len() {
            out[i] = self.word[self.used];
            self.used += 1;
            i += 1;
        }
        let mut words = out[i..].chunks_exact_mut(4);
        for w in &mut words {
            w.copy_from_slice(&self.next_word());
        }
        let tail = words.into_remainder();
        if !tail.is_empty() {
            self.word = self.next_word();
            self.used = 0;
            for b in tail {
                *b = self.word[self.used];
                self.used += 1;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Transports

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A WebSocket seen as a byte stream: each write is one binary message; reads concatenate the
/// payloads of all data messages (binary or text); a close message (or a dropped connection)
/// is end of stream.
struct WsIo {
    ws: WebSocketStream<TcpStream>,
    buf: Bytes,
    eof: bool,
}

fn ws_err(e: tungstenite::Error) -> io::Error {
    match e {
        tungstenite::Error::Io(e) => e,
        tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => {
            io::ErrorKind::BrokenPipe.into()
        }
        other => io::Error::other(other),
    }
}

impl AsyncRead for WsIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            if !self.buf.is_empty() {
                let n = out.remaining().min(self.buf.len());
                let chunk = self.buf.split_to(n);
                out.put_slice(&chunk);
                return Poll::Ready(Ok(()));
            }
            if self.eof {
                return Poll::Ready(Ok(()));
            }
            match ready!(Pin::new(&mut self.ws).poll_next(cx)) {
                Some(Ok(Message::Binary(b))) => self.buf = b,
                Some(Ok(Message::Text(t))) => self.buf = Bytes::from(t),
                // Pings are answered by tungstenite itself; pongs and raw frames carry no data.
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                Some(Ok(Message::Close(_))) | None => self.eof = true,
                Some(Err(
                    tungstenite::Error::ConnectionClosed
                    | tungstenite::Error::AlreadyClosed
                    | tungstenite::Error::Protocol(
                        tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
                    ),
                )) => self.eof = true,
                Some(Err(e)) => return Poll::Ready(Err(ws_err(e))),
            }
        }
    }
}

impl AsyncWrite for WsIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        ready!(Pin::new(&mut self.ws).poll_ready(cx)).map_err(ws_err)?;
        Pin::new(&mut self.ws)
            .start_send(Message::Binary(Bytes::copy_from_slice(buf)))
            .map_err(ws_err)?;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.ws).poll_flush(cx).map_err(ws_err)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.ws).poll_close(cx).map_err(ws_err)
    }
}

async fn dial(args: &Args) -> Result<Box<dyn Io>, String> {
    let tcp = TcpStream::connect(&args.addr)
        .await
        .map_err(|e| format!("connect {}: {e}", args.addr))?;
    tcp.set_nodelay(true)
        .map_err(|e| format!("set_nodelay: {e}"))?;
    if !args.ws {
        return Ok(Box::new(tcp));
    }
    let url = format!("ws://{}/mux", args.addr);
    // No size limits: the driver may batch many yamux frames into one message.
    let cfg = WebSocketConfig::default()
        .max_message_size(None)
        .max_frame_size(None);
    let (ws, _resp) = client_async_with_config(url.as_str(), tcp, Some(cfg))
        .await
        .map_err(|e| format!("websocket handshake with {url}: {e}"))?;
    Ok(Box::new(WsIo {
        ws,
        buf: Bytes::new(),
        eof: false,
    }))
}

// ---------------------------------------------------------------------------------------------
// Ping observation (see the module docs: tokio-yamux has no ping API, only keepalive)

/// Counts `yamux.ping_latency` records, i.e. acknowledged keepalive pings, in a watch channel.
struct AckedPings(watch::Sender<u64>);

impl HistogramFn for AckedPings {
    fn record(&self, _latency_ms: f64) {
        self.0.send_modify(|n| *n += 1);
    }

    fn record_many(&self, _latency_ms: f64, count: usize) {
        self.0.send_modify(|n| *n += count as u64);
    }
}

/// The process's global `metrics` recorder: it keeps the ping-latency histogram (as a count)
/// and drops every other metric.
struct PingRecorder(Arc<AckedPings>);

impl Recorder for PingRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, _: &Key, _: &Metadata<'_>) -> Counter {
        Counter::noop()
    }

    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        if key.name() == PING_LATENCY_METRIC {
            Histogram::from_arc(self.0.clone())
        } else {
            Histogram::noop()
        }
    }
}

/// Installs [`PingRecorder`] and returns the sender side of its count of acknowledged pings.
fn install_ping_counter() -> Result<watch::Sender<u64>, String> {
    let acked = watch::Sender::new(0u64);
    metrics::set_global_recorder(PingRecorder(Arc::new(AckedPings(acked.clone()))))
        .map_err(|e| format!("installing the metrics recorder: {e}"))?;
    Ok(acked)
}

// ---------------------------------------------------------------------------------------------
// Stream wrapper

/// A `StreamHandle` whose pending writes keep the read path alive (see the module docs).
struct Driven(StreamHandle);

impl Driven {
    fn state(&self) -> StreamState {
        self.0.state()
    }
}

impl AsyncRead for Driven {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Driven {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.0).poll_write(cx, buf);
        if r.is_pending()
            && self.0.state() == StreamState::RemoteClosing
            && self.0.send_window() == 0
        {
            // Once the remote has sent FIN, tokio-yamux 0.3.20 never takes another frame off the
            // stream's channel (recv_frames/try_recv_frames return early in RemoteClosing), so
            // window updates are never applied and the send window stays 0 for good. Fail now
            // with a clear message instead of hanging.
            return Poll::Ready(Err(io::Error::other(
                "write stalled for good: send window is 0 after the remote's FIN, and \
                 tokio-yamux 0.3.20 ignores window updates on a remotely half-closed stream",
            )));
        }
        if r.is_pending() {
            // Take queued frames (window updates) off the stream's channel and register this
            // task for the next one; the result is irrelevant (data stays buffered).
            let mut scratch = [0u8; 1];
            let _ = self.0.poll_peek(cx, &mut ReadBuf::new(&mut scratch));
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

// ---------------------------------------------------------------------------------------------
// Session driving

enum SessionCmd {
    GoAway(oneshot::Sender<io::Result<()>>),
}

struct Shared {
    control: Control,
    cmds: mpsc::UnboundedSender<SessionCmd>,
    failures: AtomicUsize,
    /// Count of acknowledged keepalive pings (see [`PingRecorder`]).
    acked_pings: watch::Sender<u64>,
    /// Set once the session has ended (before it is dropped).
    ended: AtomicBool,
}

impl Shared {
    fn fail(&self, what: String) {
        log!("FAILED: {what}");
        self.failures.fetch_add(1, Ordering::SeqCst);
    }
}

async fn run(args: Args) -> ExitCode {
    let acked_pings = match install_ping_counter() {
        Ok(a) => a,
        Err(e) => {
            log!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let io = match dial(&args).await {
        Ok(io) => io,
        Err(e) => {
            log!("{e}");
            return ExitCode::FAILURE;
        }
    };
    // Short keepalive: these pings are the only ones tokio-yamux sends, and `P` waits for them.
    let mut config = Config {
        enable_keepalive: true,
        keepalive_interval: KEEPALIVE_INTERVAL,
        ..Config::default()
    };
    if let Some(w) = args.max_window {
        config.max_stream_window_size = w;
    }
    let mut session = if args.client {
        Session::new_client(io, config)
    } else {
        Session::new_server(io, config)
    };
    let (cmd_tx, mut cmd_rx) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared {
        control: session.control(),
        cmds: cmd_tx,
        failures: AtomicUsize::new(0),
        acked_pings,
        ended: AtomicBool::new(false),
    });
    log!(
        "session up: role={} transport={} max_window={} keepalive={:?}",
        if args.client { "client" } else { "server" },
        if args.ws { "ws" } else { "tcp" },
        config.max_stream_window_size,
        config.keepalive_interval
    );

    let mut tasks = JoinSet::new();
    loop {
        let next = poll_fn(|cx| {
            while let Poll::Ready(Some(cmd)) = cmd_rx.poll_recv(cx) {
                match cmd {
                    SessionCmd::GoAway(reply) => {
                        let _ = reply.send(session.send_go_away(cx));
                    }
                }
            }
            Pin::new(&mut session).poll_next(cx)
        })
        .await;
        match next {
            Some(Ok(stream)) => {
                let sh = shared.clone();
                tasks.spawn(async move {
                    let id = stream.id();
                    if let Err(e) = respond(stream, &sh).await {
                        sh.fail(format!("stream {id}: {e}"));
                    }
                });
            }
            Some(Err(e)) => {
                match e.kind() {
                    io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::BrokenPipe
                    | io::ErrorKind::UnexpectedEof => {
                        log!("session ended: connection closed ({e})")
                    }
                    _ => shared.fail(format!("session error: {e}")),
                }
                break;
            }
            None => {
                log!("session ended");
                break;
            }
        }
        while tasks.try_join_next().is_some() {}
    }
    // Dropping the session closes the connection and makes every open stream end.
    shared.ended.store(true, Ordering::SeqCst);
    drop(session);

    let deadline = Instant::now() + DRAIN_GRACE;
    while !tasks.is_empty() {
        match tokio::time::timeout_at(deadline.into(), tasks.join_next()).await {
            Ok(Some(Err(e))) => shared.fail(format!("stream task died: {e}")),
            Ok(_) => {}
            Err(_) => {
                shared.fail(format!(
                    "{} operation(s) still running after the session ended",
                    tasks.len()
                ));
                break;
            }
        }
    }
    let failures = shared.failures.load(Ordering::SeqCst);
    if failures == 0 {
        log!("exit 0");
        ExitCode::SUCCESS
    } else {
        log!("exit 1: {failures} failure(s)");
        ExitCode::FAILURE
    }
}

// ---------------------------------------------------------------------------------------------
// Responder side

type OpResult = Result<(), String>;

fn io_ctx(what: &'static str) -> impl Fn(io::Error) -> String {
    move |e| format!("{what}: {e}")
}

async fn respond(stream: StreamHandle, sh: &Shared) -> OpResult {
    let mut s = Driven(stream);
    let mut op = [0u8; 1];
    match s.read(&mut op).await {
        Ok(1) => {}
        Ok(_) => {
            log!("stream {} ended before its command byte", s.0.id());
            return Ok(());
        }
        Err(e) if s.state() == StreamState::Reset => {
            log!("stream {} reset before its command byte ({e})", s.0.id());
            return Ok(());
        }
        Err(e) => return Err(format!("reading command byte: {e}")),
    }
    let r = match op[0] {
        b'E' => echo(&mut s).await,
        b'S' => sink(&mut s).await,
        b'G' => generate(&mut s).await,
        b'R' => {
            // Dropping an unclosed StreamHandle is tokio-yamux's only way to reset: it queues a
            // window update with the RST flag.
            drop(s);
            return Ok(());
        }
        b'P' => ping(&mut s, sh).await,
        b'O' => open(&mut s, sh).await,
        b'X' => go_away(&mut s, sh).await,
        other => Err(format!("unknown operation byte {other:#04x}")),
    };
    let r = match r {
        // The operation wrote all it had to: close our side (FIN).
        Ok(()) => match s.shutdown().await {
            Ok(()) => Ok(()),
            // tokio-yamux's close() sends the FIN and then a bookkeeping event to the session;
            // either fails only once the session is gone (dropped after the connection ended).
            // If the FIN was lost the driver sees it; it is not this peer's failure.
            Err(e) if sh.ended.load(Ordering::SeqCst) => {
                log!("stream {}: close after the session ended: {e}", s.0.id());
                Ok(())
            }
            Err(e) => Err(format!("close: {e}")),
        },
        Err(e) => Err(e),
    };
    match r {
        Err(e) if s.state() == StreamState::Reset => {
            log!(
                "stream {} ({}) reset by the driver: {e}",
                s.0.id(),
                op[0] as char
            );
            Ok(())
        }
        Err(e) => Err(format!("op {}: {e}", op[0] as char)),
        Ok(()) => Ok(()),
    }
}

async fn echo(s: &mut Driven) -> OpResult {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = s.read(&mut buf).await.map_err(io_ctx("read"))?;
        if n == 0 {
            break;
        }
        s.write_all(&buf[..n]).await.map_err(io_ctx("write"))?;
    }
    Ok(())
}

async fn sink(s: &mut Driven) -> OpResult {
    let mut buf = vec![0u8; 64 * 1024];
    let mut hash = Sha256::new();
    let mut count = 0u64;
    loop {
        let n = s.read(&mut buf).await.map_err(io_ctx("read"))?;
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
        count += n as u64;
    }
    let mut reply = Vec::with_capacity(40);
    reply.extend_from_slice(&count.to_be_bytes());
    reply.extend_from_slice(&hash.finalize());
    s.write_all(&reply).await.map_err(io_ctx("write"))?;
    Ok(())
}

async fn generate(s: &mut Driven) -> OpResult {
    let mut hdr = [0u8; 12];
    s.read_exact(&mut hdr)
        .await
        .map_err(io_ctx("reading G header"))?;
    let n = u64::from_be_bytes(hdr[..8].try_into().unwrap());
    let seed = u32::from_be_bytes(hdr[8..].try_into().unwrap());
    write_generated(s, n, seed, RESPONDER_CHUNK, None).await?;
    Ok(())
}

/// Writes `n` generated bytes from `seed` in chunks of `chunk`, hashing them if asked.
async fn write_generated<W: AsyncWrite + Unpin>(
    w: &mut W,
    n: u64,
    seed: u32,
    chunk: usize,
    mut hash: Option<&mut Sha256>,
) -> OpResult {
    let mut rng = Gen::new(seed);
    let mut buf = vec![0u8; chunk];
    let mut left = n;
    while left > 0 {
        let k = left.min(chunk as u64) as usize;
        rng.fill(&mut buf[..k]);
        if let Some(h) = hash.as_deref_mut() {
            h.update(&buf[..k]);
        }
        w.write_all(&buf[..k]).await.map_err(io_ctx("write"))?;
        left -= k as u64;
    }
    Ok(())
}

async fn ping(s: &mut Driven, sh: &Shared) -> OpResult {
    // tokio-yamux 0.3.20 cannot send a ping on request nor report its answer: Session::send_ping
    // is private and Control only opens streams or shuts down. What it does do is send keepalive
    // pings (every KEEPALIVE_INTERVAL here) and, with its `metrics` feature, record
    // `yamux.ping_latency` when the driver acknowledges one. So "ping the driver 3 times" is
    // checked as: 3 of the session's pings acknowledged after this stream arrived.
    let started = Instant::now();
    let mut acked = sh.acked_pings.subscribe();
    let base = *acked.borrow_and_update();
    let _ = tokio::time::timeout(PING_WAIT, acked.wait_for(|&n| n >= base + PINGS_FOR_P)).await;
    let n = *acked.borrow() - base;
    if n >= PINGS_FOR_P {
        log!(
            "P: {n} keepalive pings acknowledged in {:?}",
            started.elapsed()
        );
        s.write_all(b"OK\n").await.map_err(io_ctx("write"))?;
        return Ok(());
    }
    let e = format!("{n} of {PINGS_FOR_P} keepalive pings acknowledged");
    let _ = s.write_all(format!("ERR {e}\n").as_bytes()).await;
    let _ = s.shutdown().await;
    Err(format!("{e} within {PING_WAIT:?}"))
}

async fn go_away(s: &mut Driven, sh: &Shared) -> OpResult {
    let (tx, rx) = oneshot::channel();
    sh.cmds
        .send(SessionCmd::GoAway(tx))
        .map_err(|_| "session is gone".to_string())?;
    let sent = rx.await.map_err(|_| "session is gone".to_string())?;
    if let Err(e) = sent {
        let _ = s
            .write_all(format!("ERR send_go_away: {e}\n").as_bytes())
            .await;
        let _ = s.shutdown().await;
        return Err(format!("send_go_away: {e}"));
    }
    log!("X: Go Away sent");
    s.write_all(b"OK\n").await.map_err(io_ctx("write"))?;
    Ok(())
}

async fn open(s: &mut Driven, sh: &Shared) -> OpResult {
    let mut hdr = [0u8; 13];
    s.read_exact(&mut hdr)
        .await
        .map_err(io_ctx("reading O header"))?;
    let op = hdr[0];
    let k = u32::from_be_bytes(hdr[1..5].try_into().unwrap());
    let m = u64::from_be_bytes(hdr[5..].try_into().unwrap());
    let outcome = if !matches!(op, b'E' | b'S' | b'G') {
        Err(format!("O: unsupported inner op {op:#04x}"))
    } else {
        let mut set = JoinSet::new();
        for i in 0..k {
            let control = sh.control.clone();
            set.spawn(async move { (i, open_one(control, op, i, m).await) });
        }
        let mut errors = Vec::new();
        while let Some(r) = set.join_next().await {
            match r {
                Ok((_, Ok(()))) => {}
                Ok((i, Err(e))) => errors.push(format!("stream #{i}: {e}")),
                Err(e) => errors.push(format!("task died: {e}")),
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "O {}: {} of {k} failed; first: {}",
                op as char,
                errors.len(),
                errors[0]
            ))
        }
    };
    match outcome {
        Ok(()) => {
            s.write_all(b"OK\n").await.map_err(io_ctx("write"))?;
            Ok(())
        }
        Err(e) => {
            let line = format!("ERR {}\n", e.replace('\n', " "));
            let _ = s.write_all(line.as_bytes()).await;
            let _ = s.shutdown().await;
            Err(e)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Opener side (streams the peer opens for `O`)

async fn open_one(mut control: Control, op: u8, i: u32, m: u64) -> OpResult {
    let stream = control
        .open_stream()
        .await
        .map_err(|e| format!("open_stream: {e:?}"))?;
    let seed = i.wrapping_add(1);
    let s = Driven(stream);
    match op {
        b'E' => open_echo(s, seed, m).await,
        b'S' => open_sink(s, seed, m).await,
        _ => open_generate(s, seed, m).await,
    }
}

/// Reads to EOF, checking that the bytes are exactly `m` bytes of the generator from `seed`.
async fn read_expected<R: AsyncRead + Unpin>(r: &mut R, seed: u32, m: u64) -> OpResult {
    let mut rng = Gen::new(seed);
    let mut buf = vec![0u8; 64 * 1024];
    let mut want = vec![0u8; 64 * 1024];
    let mut got = 0u64;
    loop {
        let n = r.read(&mut buf).await.map_err(io_ctx("read"))?;
        if n == 0 {
            break;
        }
        if got + n as u64 > m {
            return Err(format!("got more than {m} bytes"));
        }
        rng.fill(&mut want[..n]);
        if let Some(p) = buf[..n].iter().zip(&want[..n]).position(|(a, b)| a != b) {
            return Err(format!("data differs at offset {}", got + p as u64));
        }
        got += n as u64;
    }
    if got != m {
        return Err(format!("EOF after {got} of {m} bytes"));
    }
    Ok(())
}

async fn open_echo(s: Driven, seed: u32, m: u64) -> OpResult {
    let (mut r, mut w) = tokio::io::split(s);
    let send = async {
        w.write_all(b"E").await.map_err(io_ctx("write"))?;
        write_generated(&mut w, m, seed, OPENER_CHUNK, None).await?;
        w.shutdown().await.map_err(io_ctx("close"))
    };
    let recv = read_expected(&mut r, seed, m);
    let (a, b) = tokio::join!(send, recv);
    a.and(b).map_err(|e| format!("E: {e}"))
}

async fn open_sink(mut s: Driven, seed: u32, m: u64) -> OpResult {
    let mut hash = Sha256::new();
    s.write_all(b"S").await.map_err(io_ctx("write"))?;
    write_generated(&mut s, m, seed, OPENER_CHUNK, Some(&mut hash)).await?;
    s.shutdown().await.map_err(io_ctx("close"))?;
    let mut reply = [0u8; 40];
    s.read_exact(&mut reply)
        .await
        .map_err(io_ctx("S: reading reply"))?;
    let count = u64::from_be_bytes(reply[..8].try_into().unwrap());
    if count != m {
        return Err(format!("S: count {count}, sent {m}"));
    }
    if reply[8..] != hash.finalize()[..] {
        return Err("S: SHA-256 differs".into());
    }
    let mut extra = [0u8; 1];
    match s.read(&mut extra).await.map_err(io_ctx("S: read"))? {
        0 => Ok(()),
        _ => Err("S: bytes after the 40-byte reply".into()),
    }
}

async fn open_generate(mut s: Driven, seed: u32, m: u64) -> OpResult {
    let mut hdr = Vec::with_capacity(13);
    hdr.push(b'G');
    hdr.extend_from_slice(&m.to_be_bytes());
    hdr.extend_from_slice(&seed.to_be_bytes());
    s.write_all(&hdr).await.map_err(io_ctx("write"))?;
    s.shutdown().await.map_err(io_ctx("close"))?;
    read_expected(&mut s, seed, m)
        .await
        .map_err(|e| format!("G: {e}"))
}

// ---------------------------------------------------------------------------------------------

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            log!("{e}");
            log!("{USAGE}");
            return ExitCode::FAILURE;
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            log!("tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = rt.block_on(run(args));
    // Do not wait for tasks that might still be stuck.
    rt.shutdown_timeout(Duration::from_millis(100));
    code
}

#[cfg(test)]
mod tests {
    use super::Gen;

    #[test]
    fn generator_matches_protocol_example() {
        let mut g = Gen::new(1);
        let mut b = [0u8; 4];
        g.fill(&mut b);
        assert_eq!(b, [0x21, 0x20, 0x04, 0x00]);
        assert_eq!(Gen::new(0).next_word(), Gen::new(1).next_word());
    }

    #[test]
    fn generator_is_continuous_across_odd_chunks() {
        let mut whole = vec![0u8; 1001];
        Gen::new(7).fill(&mut whole);
        let mut g = Gen::new(7);
        let mut parts = vec![0u8; 1001];
        for c in parts.chunks_mut(3) {
            g.fill(c);
        }
        assert_eq!(whole, parts);
    }
}
