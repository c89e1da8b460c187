#!/usr/bin/env node
// Interop peer for agent_relay.mux built on the npm package yamux-js (0.2.0).
// The contract is ../PROTOCOL.md. Logs go to stderr only.
//
// yamux-js 0.2.0 is a small port of hashicorp/yamux with real gaps. What this peer
// does about each one (line numbers refer to node_modules/yamux-js/lib/*.js):
//
// * Frame parsing (session.js:36-46, 56-65): Session._transform assumes every chunk
//   written to it starts on a frame boundary; a header split across chunks, or a Data
//   payload split across chunks, is silently dropped and the session desyncs. The
//   FrameAligner below only re-cuts the incoming byte stream so that each chunk handed
//   to the session is exactly one whole frame. No byte is changed or interpreted beyond
//   the 12-byte header's type/length. Always on.
// * Client has no accept callback (client.js:6-8): subclassing Client and setting the
//   protected `onStream` member is the library's own accept mechanism (session.js:167).
// * Stream.end() sends no FIN (stream.js has no _final): the peer waits for 'finish'
//   and then calls the library's Stream.close(), which sends the FIN.
// * Remote FIN is never delivered: Data-frame flags are never looked at
//   (session.js:113-114) and Stream.processFlags tests `flags === FLAGS.SYN` where FIN
//   is meant (stream.js:127); nothing in the library ever calls push(null). So a reader
//   never sees EOF: E and S responders, and every `O` opener, wait forever.
// * Remote RST is never delivered: processFlags only sets state (stream.js:144-147);
//   no 'error'/'close' is emitted unless the app writes afterwards (stream.js:32-34).
// * No stream reset API exists. For `R` the peer emits the RST frame through the
//   library's public Session.send() with the library's Header class, exactly as the
//   library itself refuses streams (session.js:147, 164), then drops the stream with
//   Stream.forceClose() + Session.closeStream().
// * Ping: Session.ping() (TypeScript-private, session.js:206-221) sends a Ping SYN but
//   reports neither completion nor RTT. `P` calls it and waits until the library has
//   retired the ping id from its `pings` map (which it does on the ACK, session.js:199-203).
// * Go Away: Session.goAway(0) (TypeScript-private, session.js:172-175) sends the frame
//   and keeps the session open, as `X` needs. The library never sets its own
//   `localGoaway` flag, so it would still accept new inbound streams afterwards
//   (session.js:146). A received Go Away only sets `remoteGoAway` (session.js:239); no
//   event is emitted, so the peer polls that flag.
// * A SYN frame's window delta (and a Data+SYN frame's payload) is dropped
//   (session.js:92-93), so a driver that opens a stream with a receive window above
//   256 KiB is never told about the extra window: a large `G` to it stalls.
// * Receive windows are re-granted as soon as data arrives, not when it is read
//   (stream.js:87-90, 113-114): yamux-js itself does not apply receive backpressure.
// * A send window of 0 is polled every 100 ms (stream.js:36-39), which caps throughput.
//
// Strict mode (the default) uses only the library's own behaviour plus the workarounds
// marked above. Setting the environment variable YAMUX_JS_PATCHES=1 additionally
// installs patches.js, which repairs the FIN, RST, SYN-delta and local-Go-Away gaps in
// the library objects. That mode exists to check this peer's own logic and to show what
// else in yamux-js interoperates; it does not prove yamux-js itself.
'use strict';

const net = require('net');
const crypto = require('crypto');
const { Duplex, Transform } = require('stream');
const WebSocket = require('ws');
const { Client, Server } = require('yamux-js');
const { Header } = require('yamux-js/lib/header');
const { VERSION, TYPES, FLAGS, ERRORS } = require('yamux-js/lib/constants');

const PATCHED = process.env.YAMUX_JS_PATCHES === '1';
const TRACE = process.env.JS_PEER_TRACE === '1'; // log every incoming frame header
const CHUNK = 16 * 1024; // protocol: O writes chunks of at most 16 KiB
const HDR = 12;

function log(...args) {
  process.stderr.write(`[js-peer] ${args.join(' ')}\n`);
}

// ---------------------------------------------------------------- command line

function usage(msg) {
  process.stderr.write(
    `js-peer: ${msg}\nusage: peer.js --role client|server --transport tcp|ws ` +
      `--connect 127.0.0.1:PORT [--max-window BYTES]\n`,
  );
  process.exit(2);
}

function parseArgs(argv) {
  const opts = { role: null, transport: null, connect: null, maxWindow: null };
  for (let i = 0; i < argv.length; i++) {
    let a = argv[i];
    let v;
    const eq = a.indexOf('=');
    if (a.startsWith('--') && eq > 0) {
      v = a.slice(eq + 1);
      a = a.slice(0, eq);
    } else {
      v = argv[++i];
    }
    if (v === undefined) usage(`missing value for ${a}`);
    switch (a) {
      case '--role':
        if (v !== 'client' && v !== 'server') usage(`bad --role ${v}`);
        opts.role = v;
        break;
      case '--transport':
        if (v !== 'tcp' && v !== 'ws') usage(`bad --transport ${v}`);
        opts.transport = v;
        break;
      case '--connect': {
        const m = /^(.+):(\d+)$/.exec(v);
        if (!m) usage(`bad --connect ${v}`);
        opts.connect = { host: m[1], port: Number(m[2]) };
        break;
      }
      case '--max-window': {
        const n = Number(v);
        if (!Number.isSafeInteger(n) || n < 256 * 1024) usage(`bad --max-window ${v}`);
        opts.maxWindow = n;
        break;
      }
      default:
        usage(`unknown argument ${a}`);
    }
  }
  if (!opts.role || !opts.transport || !opts.connect) usage('--role, --transport and --connect are required');
  return opts;
}

// ---------------------------------------------------------------- data generator

// xorshift32 byte stream, little-endian words; a partial word is kept for the next call.
class XorShift32 {
  constructor(seed) {
    this.x = seed >>> 0 || 1;
    this.word = Buffer.alloc(4);
    this.wordPos = 4; // bytes of this.word already handed out
  }

  next(n) {
    const out = Buffer.allocUnsafe(n);
    let o = 0;
    while (o < n && this.wordPos < 4) out[o++] = this.word[this.wordPos++];
    let x = this.x;
    while (n - o >= 4) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      out.writeUInt32LE(x >>> 0, o);
      o += 4;
    }
    if (o < n) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      this.word.writeUInt32LE(x >>> 0, 0);
      this.wordPos = 0;
      while (o < n) out[o++] = this.word[this.wordPos++];
    }
    this.x = x >>> 0;
    return out;
  }
}

// ---------------------------------------------------------------- stream helpers

// The remote reset this stream: yamux-js's own signal (emitted only when writing to a
// stream in Reset state, stream.js:32-34), or the patched one (patches.js).
function isRemoteReset(stream, e) {
  return e === ERRORS.errConnectionReset || (e && e.code === 'ERR_YAMUX_RESET') || stream.peerRemoteReset === true;
}

// Pull-style reader over a yamux-js stream. (Not the Readable async iterator: that one
// destroys the stream, writable side included, once it has read to EOF.)
class Reader {
  constructor(stream) {
    this.stream = stream;
    this.queue = [];
    this.queued = 0;
    this.ended = false;
    this.err = null;
    this.wake = null;
    this.buf = null;
    const poke = () => {
      if (this.wake) {
        const w = this.wake;
        this.wake = null;
        w();
      }
    };
    stream.on('data', (c) => {
      this.queue.push(c);
      this.queued += c.length;
      if (this.queued > 1 << 20) stream.pause();
      poke();
    });
    stream.on('end', () => {
      this.ended = true;
      poke();
    });
    stream.on('error', (e) => {
      if (!this.err) this.err = e;
      poke();
    });
    stream.on('close', () => {
      if (!this.ended && !this.err) this.err = new Error('stream closed before EOF');
      poke();
    });
  }

  // Next chunk, or null at EOF.
  async next() {
    if (this.buf) {
      const b = this.buf;
      this.buf = null;
      return b;
    }
    for (;;) {
      if (this.queue.length) {
        const c = this.queue.shift();
        this.queued -= c.length;
        if (this.queued <= 1 << 19 && this.stream.isPaused()) this.stream.resume();
        return c;
      }
      if (this.err) throw this.err;
      if (this.ended) return null;
      await new Promise((resolve) => (this.wake = resolve));
    }
  }

  // Exactly n bytes; throws at an early EOF.
  async exact(n) {
    const parts = [];
    let have = 0;
    while (have < n) {
      const c = await this.next();
      if (c === null) throw new Error(`EOF after ${have} of ${n} bytes`);
      const take = Math.min(c.length, n - have);
      parts.push(c.subarray(0, take));
      have += take;
      if (take < c.length) this.buf = c.subarray(take);
    }
    return parts.length === 1 ? parts[0] : Buffer.concat(parts, n);
  }
}

// Resolves when the stream wants more data, rejects if it breaks first.
function waitDrain(stream) {
  return new Promise((resolve, reject) => {
    const done = (err) => {
      stream.off('drain', onDrain);
      stream.off('error', onErr);
      stream.off('close', onClose);
      if (err) reject(err);
      else resolve();
    };
    const onDrain = () => done();
    const onErr = (e) => done(e);
    const onClose = () => done(new Error('stream closed while writing'));
    stream.on('drain', onDrain);
    stream.on('error', onErr);
    stream.on('close', onClose);
  });
}

// Write honouring backpressure (write() === false -> wait for 'drain').
async function write(stream, buf) {
  if (stream.destroyed) throw stream.errored || new Error('stream destroyed');
  if (!stream.write(buf)) await waitDrain(stream);
}

// Flush our writes, then send FIN. yamux-js's end() sends nothing; close() sends the FIN.
function finish(stream) {
  return new Promise((resolve, reject) => {
    const onErr = (e) => {
      stream.off('finish', onFinish);
      reject(e);
    };
    const onFinish = () => {
      stream.off('error', onErr);
      stream.close();
      if (stream.peerAfterClose) stream.peerAfterClose();
      resolve();
    };
    stream.once('finish', onFinish);
    stream.once('error', onErr);
    stream.end();
  });
}

// ---------------------------------------------------------------- transports

// Re-cuts the incoming byte stream into whole yamux frames (see the header comment).
class FrameAligner extends Transform {
  constructor() {
    super();
    this.parts = [];
    this.len = 0;
  }

  take(n) {
    const out = Buffer.allocUnsafe(n);
    let o = 0;
    while (o < n) {
      const p = this.parts[0];
      const k = Math.min(p.length, n - o);
      p.copy(out, o, 0, k);
      o += k;
      if (k === p.length) this.parts.shift();
      else this.parts[0] = p.subarray(k);
    }
    this.len -= n;
    return out;
  }

  peekHeader() {
    if (this.parts[0].length >= HDR) return this.parts[0];
    const h = Buffer.allocUnsafe(HDR);
    let o = 0;
    for (const p of this.parts) {
      const k = Math.min(p.length, HDR - o);
      p.copy(h, o, 0, k);
      o += k;
      if (o === HDR) break;
    }
    return h;
  }

  _transform(chunk, _enc, cb) {
    if (chunk.length) {
      this.parts.push(chunk);
      this.len += chunk.length;
    }
    while (this.len >= HDR) {
      const h = this.peekHeader();
      const body = h[1] === TYPES.Data ? h.readUInt32BE(8) : 0;
      if (this.len < HDR + body) break;
      if (TRACE) log(`recv frame type=${h[1]} flags=${h.readUInt16BE(2)} stream=${h.readUInt32BE(4)} len=${h.readUInt32BE(8)}`);
      this.push(this.take(HDR + body));
    }
    cb();
  }
}

// WebSocket as a byte stream: each write is one binary message; all messages (binary
// or text) are concatenated on read; a close is EOF.
class WsByteStream extends Duplex {
  constructor(ws) {
    super();
    this.ws = ws;
    ws.on('message', (data) => {
      const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
      if (!this.push(buf)) ws.pause();
    });
    ws.on('close', () => {
      this.push(null);
      this.emit('transport-close');
    });
    ws.on('error', (e) => this.destroy(e));
  }

  _read() {
    if (this.ws.isPaused) this.ws.resume();
  }

  _write(chunk, _enc, cb) {
    if (this.ws.readyState !== WebSocket.OPEN) return cb(new Error('websocket is not open'));
    this.ws.send(chunk, { binary: true }, cb);
  }

  _final(cb) {
    this.ws.close();
    cb();
  }
}

function connectTcp({ host, port }) {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host, port });
    sock.once('connect', () => {
      sock.off('error', reject);
      sock.setNoDelay(true);
      sock.on('close', () => sock.emit('transport-close'));
      resolve(sock);
    });
    sock.once('error', reject);
  });
}

function connectWs({ host, port }) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://${host}:${port}/mux`, { perMessageDeflate: false, maxPayload: 0 });
    ws.once('open', () => {
      ws.off('error', reject);
      resolve(new WsByteStream(ws));
    });
    ws.once('error', reject);
  });
}

// ---------------------------------------------------------------- the peer

class AcceptingClient extends Client {
  // yamux-js's Client takes no accept callback; onStream is a protected member of Session.
  constructor(onStream, config) {
    super(config);
    this.onStream = onStream;
  }
}

class Peer {
  constructor(opts) {
    this.opts = opts;
    this.failures = [];
    this.active = new Set();
    this.ended = false;
    this.nextOp = 0;
  }

  fail(msg) {
    this.failures.push(msg);
    log(`FAIL: ${msg}`);
  }

  async start() {
    const { opts } = this;
    const config = { logger: (fmt, ...rest) => log(require('util').format(fmt, ...rest)) };
    if (opts.maxWindow) config.maxStreamWindowSize = opts.maxWindow;
    const onStream = (s) => this.respond(s);
    this.session = opts.role === 'client' ? new AcceptingClient(onStream, config) : new Server(onStream, config);
    if (PATCHED) {
      require('./patches').install(this.session);
      log('YAMUX_JS_PATCHES=1: library patches installed (not a pure yamux-js run)');
    }
    this.session.on('error', (e) => {
      if (!this.ended) this.fail(`session error: ${e.message}`);
    });

    this.conn = opts.transport === 'tcp' ? await connectTcp(opts.connect) : await connectWs(opts.connect);
    log(`connected (${opts.transport}, role ${opts.role}${opts.maxWindow ? `, max window ${opts.maxWindow}` : ''})`);
    this.conn.on('error', (e) => log(`transport error: ${e.message}`));
    this.conn.once('transport-close', () => this.end('connection closed'));
    this.conn.pipe(new FrameAligner()).pipe(this.session).pipe(this.conn);

    // A received Go Away only flips a flag in yamux-js; watch it.
    this.goAwayTimer = setInterval(() => {
      if (this.session.remoteGoAway && !this.sawGoAway) {
        this.sawGoAway = true;
        log('Go Away received');
        this.maybeEndAfterGoAway();
      }
    }, 50);
  }

  maybeEndAfterGoAway() {
    if (this.sawGoAway && this.active.size === 0) this.end('Go Away received');
  }

  end(why) {
    if (this.ended) return;
    this.ended = true;
    log(`session ended: ${why}`);
    clearInterval(this.goAwayTimer);
    const pending = [...this.active];
    this.session.close(); // destroys every library stream; pending readers stop
    // Let pending operations observe the close, then exit (well within 5 s).
    setTimeout(() => {
      for (const op of pending) {
        if (this.active.has(op)) this.fail(`${op} unfinished at session end`);
      }
      if (this.failures.length) {
        log(`exit 1: ${this.failures.length} failure(s)`);
        process.exit(1);
      }
      log('exit 0');
      process.exit(0);
    }, 300);
  }

  async track(name, fn) {
    const op = `${name}#${this.nextOp++}`;
    this.active.add(op);
    try {
      await fn();
    } finally {
      this.active.delete(op);
      this.maybeEndAfterGoAway();
    }
    return op;
  }

  // ------------------------------------------------------------ responder side

  respond(stream) {
    const id = stream.ID();
    stream.on('error', (e) => log(`stream ${id}: ${e.message}`));
    const r = new Reader(stream);
    let name = `stream ${id}`;
    this.track(name, async () => {
      try {
        const cmd = String.fromCharCode((await r.exact(1))[0]);
        name = `stream ${id} ${cmd}`;
        switch (cmd) {
          case 'E':
            return await this.echo(stream, r);
          case 'S':
            return await this.sink(stream, r);
          case 'G':
            return await this.generate(stream, r);
          case 'R':
            return this.reset(stream);
          case 'P':
            return await this.pingOp(stream);
          case 'O':
            return await this.openOp(stream, r);
          case 'X':
            return await this.goAwayOp(stream);
          default:
            throw new Error(`unknown command byte 0x${cmd.charCodeAt(0).toString(16)}`);
        }
      } catch (e) {
        if (isRemoteReset(stream, e)) log(`${name}: reset by the driver (${e.message})`);
        else if (this.ended) this.fail(`${name}: ${e.message} (session ended)`);
        else this.fail(`${name}: ${e.message}`);
      }
    });
  }

  async echo(stream, r) {
    for (let c = await r.next(); c !== null; c = await r.next()) await write(stream, c);
    await finish(stream);
  }

  async sink(stream, r) {
    const h = crypto.createHash('sha256');
    let count = 0;
    for (let c = await r.next(); c !== null; c = await r.next()) {
      h.update(c);
      count += c.length;
    }
    const out = Buffer.alloc(40);
    out.writeBigUInt64BE(BigInt(count), 0);
    h.digest().copy(out, 8);
    await write(stream, out);
    await finish(stream);
  }

  async generate(stream, r) {
    const hdr = await r.exact(12);
    const n = hdr.readBigUInt64BE(0);
    if (n > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error(`G length ${n} too large`);
    await sendGenerated(stream, new XorShift32(hdr.readUInt32BE(8)), Number(n), 4 * CHUNK);
    await finish(stream);
  }

  reset(stream) {
    // yamux-js has no reset API: send the RST frame via the public Session.send with
    // the library's Header, as the library does itself (session.js:147), then forget it.
    const id = stream.ID();
    this.session.send(new Header(VERSION, TYPES.WindowUpdate, FLAGS.RST, id, 0));
    stream.forceClose();
    this.session.closeStream(id);
    stream.destroy();
  }

  async pingOp(stream) {
    let reply;
    try {
      for (let i = 0; i < 3; i++) await this.ping();
      reply = 'OK\n';
    } catch (e) {
      reply = `ERR ${e.message}\n`;
      this.fail(`P: ${e.message}`);
    }
    await write(stream, Buffer.from(reply));
    await finish(stream);
  }

  // One ping through yamux-js. ping() gives no completion signal; the library deletes
  // the id from its pings map when the ACK arrives (session.js:199-203).
  ping() {
    const s = this.session;
    const id = s.pingID;
    const t0 = process.hrtime.bigint();
    s.ping();
    if (!s.pings.has(id)) return Promise.reject(new Error('yamux-js did not send the ping (session shut down)'));
    return new Promise((resolve, reject) => {
      const timer = setInterval(() => {
        if (!s.pings.has(id)) {
          clearInterval(timer);
          log(`ping ${id} acknowledged after ${Number(process.hrtime.bigint() - t0) / 1e6} ms`);
          resolve();
        } else if (s.isClosed() || Number(process.hrtime.bigint() - t0) > 10e9) {
          clearInterval(timer);
          reject(new Error(`ping ${id} not acknowledged`));
        }
      }, 1);
    });
  }

  async goAwayOp(stream) {
    this.session.goAway(0);
    if (PATCHED) this.session.localGoaway = true; // the library never sets it itself
    log('Go Away sent');
    await write(stream, Buffer.from('OK\n'));
    await finish(stream);
  }

  async openOp(stream, r) {
    const hdr = await r.exact(13);
    const op = String.fromCharCode(hdr[0]);
    const k = hdr.readUInt32BE(1);
    const m64 = hdr.readBigUInt64BE(5);
    let reply;
    if (!'ESG'.includes(op) || m64 > BigInt(Number.MAX_SAFE_INTEGER)) {
      reply = `ERR bad O request op=${JSON.stringify(op)} m=${m64}\n`;
      this.fail(reply.trim());
    } else {
      const m = Number(m64);
      log(`O: opening ${k} streams, op ${op}, ${m} bytes each`);
      const jobs = [];
      for (let i = 0; i < k; i++) jobs.push(this.openOne(op, i, m));
      const results = await Promise.allSettled(jobs);
      const errs = results.filter((x) => x.status === 'rejected').map((x) => x.reason.message);
      if (errs.length) {
        reply = `ERR ${errs.length}/${k} failed: ${errs[0]}\n`.replace(/\n(?!$)/g, ' ');
        this.fail(`O ${op}: ${reply.trim()}`);
      } else {
        reply = 'OK\n';
      }
    }
    await write(stream, Buffer.from(reply));
    await finish(stream);
  }

  // ------------------------------------------------------------ opener side

  async openOne(op, i, m) {
    const seed = i + 1;
    const errors = [];
    const onSessionError = (e) => errors.push(e);
    this.session.on('error', onSessionError); // open() reports refusal as a session error
    const stream = this.session.open();
    this.session.off('error', onSessionError);
    if (errors.length) throw new Error(`open: ${errors[0].message}`);
    const id = stream.ID();
    stream.on('error', (e) => log(`opened stream ${id}: ${e.message}`));
    const r = new Reader(stream);
    const tag = `O${op}[${i}] stream ${id}`;
    try {
      if (op === 'E') {
        const reading = (async () => {
          const want = new XorShift32(seed);
          let got = 0;
          for (let c = await r.next(); c !== null; c = await r.next()) {
            if (got + c.length > m) throw new Error(`echo longer than ${m} bytes`);
            if (!want.next(c.length).equals(c)) throw new Error(`echo differs near offset ${got}`);
            got += c.length;
          }
          if (got !== m) throw new Error(`echo has ${got} of ${m} bytes`);
        })();
        reading.catch(() => {}); // observed below
        await write(stream, Buffer.from('E'));
        await sendGenerated(stream, new XorShift32(seed), m, CHUNK);
        await finish(stream);
        await reading;
      } else if (op === 'S') {
        await write(stream, Buffer.from('S'));
        const h = crypto.createHash('sha256');
        const gen = new XorShift32(seed);
        for (let left = m; left > 0; ) {
          const c = gen.next(Math.min(CHUNK, left));
          h.update(c);
          await write(stream, c);
          left -= c.length;
        }
        await finish(stream);
        const res = await r.exact(40);
        const count = res.readBigUInt64BE(0);
        if (count !== BigInt(m)) throw new Error(`sink count ${count}, want ${m}`);
        if (!res.subarray(8).equals(h.digest())) throw new Error('sink SHA-256 mismatch');
        if ((await r.next()) !== null) throw new Error('data after the sink result');
      } else {
        const req = Buffer.alloc(13);
        req.write('G', 0);
        req.writeBigUInt64BE(BigInt(m), 1);
        req.writeUInt32BE(seed, 9);
        await write(stream, req);
        await finish(stream);
        const want = new XorShift32(seed);
        let got = 0;
        for (let c = await r.next(); c !== null; c = await r.next()) {
          if (got + c.length > m) throw new Error(`generated data longer than ${m} bytes`);
          if (!want.next(c.length).equals(c)) throw new Error(`generated data differs near offset ${got}`);
          got += c.length;
        }
        if (got !== m) throw new Error(`got ${got} of ${m} generated bytes`);
      }
    } catch (e) {
      throw new Error(`${tag}: ${e.message}`);
    }
  }
}

async function sendGenerated(stream, gen, n, chunk) {
  for (let left = n; left > 0; ) {
    const c = gen.next(Math.min(chunk, left));
    await write(stream, c);
    left -= c.length;
  }
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const peer = new Peer(opts);
  try {
    await peer.start();
  } catch (e) {
    log(`cannot start: ${e.message}`);
    process.exit(1);
  }
}

if (require.main === module) {
  process.on('uncaughtException', (e) => {
    log(`uncaught exception: ${e.stack || e}`);
    process.exit(1);
  });
  process.on('unhandledRejection', (e) => {
    log(`unhandled rejection: ${(e && e.stack) || e}`);
    process.exit(1);
  });
  main();
}

module.exports = { XorShift32, FrameAligner };
