//! A host and a relay built the way the reference's are (see ../README.md), for the
//! drop-in tests: `ref-peer host ...` and `ref-peer relay ...`.
//!
//! What matters is how they meet the network, not their features: Nagle left on (no
//! `set_nodelay` anywhere), tokio-yamux over tokio-tungstenite with one binary WebSocket
//! message per write the yamux session makes, hyper on each yamux stream, and (host) a
//! new TCP connection to the local server per request.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{any, get, post};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use hmac::{Hmac, Mac};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_yamux::{Config, Control, Session, StreamHandle};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

// ------------------------------------------------------------------ yamux over a WebSocket

/// A WebSocket as one byte stream: each write is one binary message (sent at once), every
/// message read is appended to the stream, a close ends it.
struct WsIo<S> {
    ws: WebSocketStream<S>,
    pending: Bytes,
    eof: bool,
}

impl<S> WsIo<S> {
    fn new(ws: WebSocketStream<S>) -> Self {
        WsIo { ws, pending: Bytes::new(), eof: false }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for WsIo<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            if !self.pending.is_empty() {
                let n = self.pending.len().min(buf.remaining());
                let chunk = self.pending.split_to(n);
                buf.put_slice(&chunk);
                return Poll::Ready(Ok(()));
            }
            if self.eof {
                return Poll::Ready(Ok(()));
            }
            match ready!(self.ws.poll_next_unpin(cx)) {
                Some(Ok(Message::Binary(data))) => self.pending = data,
                Some(Ok(Message::Text(text))) => {
                    self.pending = Bytes::copy_from_slice(text.as_bytes())
                }
                Some(Ok(Message::Close(_))) | None => self.eof = true,
                Some(Ok(_)) => {}
                Some(Err(err)) => return Poll::Ready(Err(io::Error::other(err))),
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for WsIo<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(self.ws.poll_ready_unpin(cx)).map_err(io::Error::other)?;
        self.ws
            .start_send_unpin(Message::Binary(Bytes::copy_from_slice(data)))
            .map_err(io::Error::other)?;
        // The message leaves now, on its own socket write (the reference's behaviour).
        if let Poll::Ready(Err(err)) = self.ws.poll_flush_unpin(cx) {
            return Poll::Ready(Err(io::Error::other(err)));
        }
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.ws.poll_flush_unpin(cx).map_err(io::Error::other)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.ws.poll_close_unpin(cx).map_err(io::Error::other)
    }
}

fn yamux_config() -> Config {
    Config {
        max_stream_window_size: 1024 * 1024,
        keepalive_interval: Duration::from_secs(30),
        connection_write_timeout: Duration::from_secs(30),
        accept_backlog: 256,
        ..Config::default()
    }
}

// ------------------------------------------------------------------------------ host

struct HostArgs {
    relay: String,
    token: String,
    machine_id: String,
    name: String,
    upstream: String, // host:port of the local server
}

async fn run_host(args: HostArgs) -> Result<(), BoxError> {
    let base = args.relay.trim_end_matches('/');
    let ws_base = if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        base.to_string()
    };
    let url = format!(
        "{ws_base}/v1/relay/connect?machine_id={}&name={}",
        encode_query(&args.machine_id),
        encode_query(&args.name)
    );
    let authority = url
        .split("://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .ok_or("bad relay URL")?
        .to_string();
    let upstream = Arc::new(args.upstream);
    let mut delay = Duration::from_secs(1);
    loop {
        let mut request = url.as_str().into_client_request()?;
        request
            .headers_mut()
            .insert(header::AUTHORIZATION, HeaderValue::from_str(&format!("Bearer {}", args.token))?);
        // Nagle stays on: the reference dials with `disable_nagle = false`.
        let connected = match TcpStream::connect(&authority).await {
            Ok(tcp) => tokio_tungstenite::client_async(request, tcp).await.map_err(BoxError::from),
            Err(err) => Err(err.into()),
        };
        match connected {
            Ok((ws, _)) => {
                eprintln!("ref-host: connected to {url}");
                delay = Duration::from_secs(1);
                let mut session = Session::new_client(WsIo::new(ws), yamux_config());
                while let Some(stream) = session.next().await {
                    match stream {
                        Ok(stream) => {
                            tokio::spawn(serve_stream(stream, upstream.clone()));
                        }
                        Err(err) => {
                            eprintln!("ref-host: session error: {err}");
                            break;
                        }
                    }
                }
                eprintln!("ref-host: control channel ended");
            }
            Err(err) => eprintln!("ref-host: connect failed: {err}"),
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(30));
    }
}

fn encode_query(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// One proxied request: HTTP/1.1 on the yamux stream, forwarded on a new connection.
async fn serve_stream(stream: StreamHandle, upstream: Arc<String>) {
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let upstream = upstream.clone();
        async move { Ok::<_, Infallible>(forward(request, &upstream).await) }
    });
    if let Err(err) = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades()
        .await
    {
        eprintln!("ref-host: stream ended with error: {err}");
    }
}

fn text_response(status: StatusCode, text: &str) -> Response<Body> {
    let mut response = Response::new(Body::from(text.to_string()));
    *response.status_mut() = status;
    response
}

async fn forward(mut request: Request<Incoming>, upstream: &str) -> Response<Body> {
    request.headers_mut().insert("x-vk-relayed", HeaderValue::from_static("1"));
    let client_upgrade = hyper::upgrade::on(&mut request);
    let tcp = match TcpStream::connect(upstream).await {
        Ok(tcp) => tcp,
        Err(err) => return text_response(StatusCode::BAD_GATEWAY, &format!("local server: {err}")),
    };
    let (mut sender, connection) =
        match hyper::client::conn::http1::handshake::<_, Incoming>(TokioIo::new(tcp)).await {
            Ok(pair) => pair,
            Err(err) => return text_response(StatusCode::BAD_GATEWAY, &err.to_string()),
        };
    tokio::spawn(async move {
        let _ = connection.with_upgrades().await;
    });
    let mut response = match sender.send_request(request).await {
        Ok(response) => response,
        Err(err) => return text_response(StatusCode::BAD_GATEWAY, &err.to_string()),
    };
    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        let server_upgrade = hyper::upgrade::on(&mut response);
        tokio::spawn(splice(client_upgrade, server_upgrade));
    }
    response.map(Body::new)
}

async fn splice(a: hyper::upgrade::OnUpgrade, b: hyper::upgrade::OnUpgrade) {
    if let (Ok(a), Ok(b)) = (a.await, b.await) {
        let _ = tokio::io::copy_bidirectional(&mut TokioIo::new(a), &mut TokioIo::new(b)).await;
    }
}

// ------------------------------------------------------------------------------ relay

#[derive(Default)]
struct Relay {
    secret: Vec<u8>,
    /// (user, machine id) -> host id, as the reference's `hosts` upsert.
    hosts: Mutex<HashMap<(String, String), String>>,
    /// host id -> (generation, live tunnel)
    tunnels: Mutex<HashMap<String, (u64, Control)>>,
    /// browser session id -> host id
    sessions: Mutex<HashMap<String, String>>,
    counter: Mutex<u64>,
}

impl Relay {
    fn new_id(&self) -> String {
        let mut counter = self.counter.lock().unwrap();
        *counter += 1;
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
        let digest = Sha256::digest(format!("{nanos}-{}", *counter));
        let h: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
        format!("{}-{}-4{}-8{}-{}", &h[0..8], &h[8..12], &h[13..16], &h[17..20], &h[20..32])
    }

    /// The user of a valid bearer token: HS256 over the secret, `aud` access, not expired.
    fn user(&self, headers: &HeaderMap) -> Option<String> {
        let token = headers.get(header::AUTHORIZATION)?.to_str().ok()?.strip_prefix("Bearer ")?;
        let mut parts = token.split('.');
        let (head, body, sig) = (parts.next()?, parts.next()?, parts.next()?);
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.secret).ok()?;
        mac.update(format!("{head}.{body}").as_bytes());
        mac.verify_slice(&URL_SAFE_NO_PAD.decode(sig).ok()?).ok()?;
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body).ok()?).ok()?;
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64();
        if claims.get("aud")?.as_str()? != "access" || claims.get("exp")?.as_f64()? + 60.0 < now {
            return None;
        }
        Some(claims.get("sub")?.as_str()?.to_string())
    }
}

fn decode_query(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => out.push(b),
                    Err(_) => out.extend_from_slice(&bytes[i..i + 3]),
                }
                i += 3;
                continue;
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn status(code: StatusCode, text: &str) -> Response<Body> {
    text_response(code, text)
}

async fn health() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], r#"{"status":"ok"}"#)
}

async fn connect(
    State(relay): State<Arc<Relay>>,
    mut request: Request<Body>,
) -> Response<Body> {
    let query: HashMap<&str, &str> = request
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .collect();
    let machine_id = query.get("machine_id").map(|m| decode_query(m));
    let Some(user) = relay.user(request.headers()) else {
        return status(StatusCode::UNAUTHORIZED, "unauthorized");
    };
    let Some(machine_id) = machine_id else {
        return status(StatusCode::BAD_REQUEST, "machine_id missing");
    };
    let Some(key) = request.headers().get("sec-websocket-key").cloned() else {
        return status(StatusCode::BAD_REQUEST, "not a WebSocket upgrade");
    };
    let host_id = {
        let mut hosts = relay.hosts.lock().unwrap();
        let entry = hosts.entry((user.clone(), machine_id.clone()));
        entry.or_insert_with(|| relay.new_id()).clone()
    };
    let upgrade = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        let Ok(upgraded) = upgrade.await else { return };
        let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        let mut session = Session::new_server(WsIo::new(ws), yamux_config());
        let generation = {
            let mut counter = relay.counter.lock().unwrap();
            *counter += 1;
            *counter
        };
        relay.tunnels.lock().unwrap().insert(host_id.clone(), (generation, session.control()));
        eprintln!("ref-relay: host {host_id} (machine {machine_id}) connected");
        // The session is driven by polling it; the host opens no streams.
        while let Some(Ok(_)) = session.next().await {}
        let mut tunnels = relay.tunnels.lock().unwrap();
        if tunnels.get(&host_id).is_some_and(|(g, _)| *g == generation) {
            tunnels.remove(&host_id);
        }
        eprintln!("ref-relay: host {host_id} disconnected");
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "upgrade")
        .header(header::UPGRADE, "websocket")
        .header("sec-websocket-accept", derive_accept_key(key.as_bytes()))
        .body(Body::empty())
        .unwrap()
}

async fn create(
    State(relay): State<Arc<Relay>>,
    Path(host_id): Path<String>,
    headers: HeaderMap,
) -> Response<Body> {
    let Some(user) = relay.user(&headers) else {
        return status(StatusCode::UNAUTHORIZED, "unauthorized");
    };
    let owned = relay.hosts.lock().unwrap().iter().any(|((u, _), h)| *u == user && *h == host_id);
    if !owned {
        return status(StatusCode::FORBIDDEN, "forbidden");
    }
    let session_id = relay.new_id();
    relay.sessions.lock().unwrap().insert(session_id.clone(), host_id);
    let body = serde_json::json!({ "session_id": session_id }).to_string();
    Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .unwrap()
}

/// The ids the relay gave its hosts, by machine id (a test's hook: the reference's remote
/// API tells a host its id).
async fn list_hosts(State(relay): State<Arc<Relay>>) -> Response<Body> {
    let hosts = relay.hosts.lock().unwrap();
    let map: serde_json::Map<String, serde_json::Value> =
        hosts.iter().map(|((_, m), h)| (m.clone(), serde_json::Value::from(h.clone()))).collect();
    Response::new(Body::from(serde_json::Value::Object(map).to_string()))
}

async fn proxy_root(
    state: State<Arc<Relay>>,
    Path((host_id, session_id)): Path<(String, String)>,
    request: Request<Body>,
) -> Response<Body> {
    proxy(state, host_id, session_id, request).await
}

async fn proxy_tail(
    state: State<Arc<Relay>>,
    Path((host_id, session_id, _tail)): Path<(String, String, String)>,
    request: Request<Body>,
) -> Response<Body> {
    proxy(state, host_id, session_id, request).await
}

async fn proxy(
    State(relay): State<Arc<Relay>>,
    host_id: String,
    session_id: String,
    mut request: Request<Body>,
) -> Response<Body> {
    match relay.sessions.lock().unwrap().get(&session_id) {
        None => return status(StatusCode::UNAUTHORIZED, "unknown session"),
        Some(h) if *h != host_id => return status(StatusCode::FORBIDDEN, "wrong host"),
        Some(_) => {}
    }
    let Some(mut control) = relay.tunnels.lock().unwrap().get(&host_id).map(|(_, c)| c.clone())
    else {
        return status(StatusCode::NOT_FOUND, "No active relay");
    };
    let prefix = format!("/v1/relay/h/{host_id}/s/{session_id}");
    let path_and_query = request.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let mut rest = path_and_query.strip_prefix(&prefix).unwrap_or("/").to_string();
    if rest.is_empty() || rest.starts_with('?') {
        rest.insert(0, '/');
    }
    *request.uri_mut() = match rest.parse() {
        Ok(uri) => uri,
        Err(_) => return status(StatusCode::BAD_REQUEST, "bad path"),
    };
    let client_upgrade = hyper::upgrade::on(&mut request);
    let stream = match control.open_stream().await {
        Ok(stream) => stream,
        Err(err) => return status(StatusCode::BAD_GATEWAY, &format!("open stream: {err}")),
    };
    let (mut sender, connection) =
        match hyper::client::conn::http1::handshake::<_, Body>(TokioIo::new(stream)).await {
            Ok(pair) => pair,
            Err(err) => return status(StatusCode::BAD_GATEWAY, &err.to_string()),
        };
    tokio::spawn(async move {
        let _ = connection.with_upgrades().await;
    });
    let mut response = match sender.send_request(request).await {
        Ok(response) => response,
        Err(err) => return status(StatusCode::BAD_GATEWAY, &err.to_string()),
    };
    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        let host_upgrade = hyper::upgrade::on(&mut response);
        tokio::spawn(splice(client_upgrade, host_upgrade));
    }
    response.map(Body::new)
}

/// CORS on every route, as the reference's layer does: the request's origin, methods and
/// headers mirrored, credentials allowed; every OPTIONS is answered here.
async fn cors(request: Request<Body>, next: axum::middleware::Next) -> Response<Body> {
    let origin = request.headers().get(header::ORIGIN).cloned();
    let methods = request.headers().get(header::ACCESS_CONTROL_REQUEST_METHOD).cloned();
    let asked = request.headers().get(header::ACCESS_CONTROL_REQUEST_HEADERS).cloned();
    // Every OPTIONS is the layer's own answer (200, empty), never a handler's.
    let preflight = request.method() == axum::http::Method::OPTIONS;
    let mut response = if preflight { Response::new(Body::empty()) } else { next.run(request).await };
    let headers = response.headers_mut();
    if let Some(origin) = origin {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        headers.insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
        headers.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("x-vk-resp-ts,x-vk-resp-nonce,x-vk-resp-signature"),
        );
        if let Some(methods) = methods {
            headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, methods);
        }
        if let Some(asked) = asked {
            headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, asked);
        }
        headers.append(header::VARY, HeaderValue::from_static("origin"));
    }
    response
}

async fn run_relay(listen: String, secret_b64: String) -> Result<(), BoxError> {
    let relay = Arc::new(Relay { secret: STANDARD.decode(secret_b64.trim())?, ..Relay::default() });
    let app = Router::new()
        .route("/health", get(health))
        .route("/v1/relay/connect", get(connect))
        .route("/v1/relay/create/{host_id}", post(create))
        .route("/v1/relay/h/{host_id}/s/{session_id}", any(proxy_root))
        .route("/v1/relay/h/{host_id}/s/{session_id}/{*tail}", any(proxy_tail))
        .route("/_test/hosts", get(list_hosts))
        .layer(axum::middleware::from_fn(cors))
        .with_state(relay);
    let listener = TcpListener::bind(&listen).await?;
    eprintln!("ref-relay: listening on {}", listener.local_addr()?);
    // Plain `axum::serve`: Nagle on for every accepted connection, as the reference.
    // REF_RELAY_CLIENT_NODELAY=1 is a diagnostic only: it tells a stall on the client hop
    // from one on the tunnel.
    if std::env::var("REF_RELAY_CLIENT_NODELAY").is_ok_and(|v| v == "1") {
        use axum::serve::ListenerExt;
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        axum::serve(listener, app).await?;
    } else {
        axum::serve(listener, app).await?;
    }
    Ok(())
}

// ------------------------------------------------------------------------------ main

fn usage() -> ! {
    eprintln!(
        "usage: ref-peer host --relay URL --token-file PATH --machine-id ID --name NAME --upstream HOST:PORT\n\
         \x20      ref-peer relay --listen HOST:PORT   (secret: VIBEKANBAN_REMOTE_JWT_SECRET)"
    );
    std::process::exit(2)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut options: HashMap<String, String> = HashMap::new();
    for pair in args.get(1..).unwrap_or_default().chunks(2) {
        match pair {
            [key, value] if key.starts_with("--") => {
                options.insert(key[2..].to_string(), value.clone());
            }
            _ => usage(),
        }
    }
    let need = |name: &str| options.get(name).cloned().unwrap_or_else(|| usage());
    let result = match args.first().map(String::as_str) {
        Some("host") => {
            let token = std::fs::read_to_string(need("token-file")).unwrap_or_else(|err| {
                eprintln!("ref-host: token file: {err}");
                std::process::exit(2)
            });
            run_host(HostArgs {
                relay: need("relay"),
                token: token.trim().to_string(),
                machine_id: need("machine-id"),
                name: need("name"),
                upstream: need("upstream"),
            })
            .await
        }
        Some("relay") => {
            let secret = std::env::var("VIBEKANBAN_REMOTE_JWT_SECRET").unwrap_or_else(|_| usage());
            run_relay(need("listen"), secret).await
        }
        _ => usage(),
    };
    if let Err(err) = result {
        eprintln!("ref-peer: {err}");
        std::process::exit(1);
    }
}
