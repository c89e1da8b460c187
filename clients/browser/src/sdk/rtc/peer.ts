// The browser's end of the data channel: an RTCPeerConnection with one ordered, reliable
// channel named "relay" (non-trickle: the offer carries every candidate gathered within a
// bound), chunked messages both ways, requests matched to answers by id, streamed bodies
// and WebSockets. Everything about trust (signing requests, checking answers) stays in
// RelayClient: this file only moves messages, and turns an http_response into a Response
// that RelayClient checks exactly as one that came through the relay.
import { ChunkError, Reassembler, splitMessage } from "./chunking";
import { type ChannelHeaders, type ChannelMessage, EXTENSIONS, MessageError, decodeMessage, encodeMessage } from "./messages";

export const CHANNEL_LABEL = "relay";
// Request body bytes per body message (as the host's answers): one chunk once in base64.
const CHUNK_BODY = 32 * 1024;
// Pause writing while this much is queued in SCTP; resume once it drains below half.
const HIGH_WATER = 1 << 20;

export interface ChannelLimits {
  /** Longest wait for ICE gathering, ms (the host's bound is 5 s as well). */
  gatherMs: number;
  /** Longest wait for the data channel to open once the answer is set, ms. */
  openMs: number;
  /** Largest reassembled message (the host's default: 1 MiB). */
  maxMessage: number;
  /** Body or WebSocket messages held unread before the channel is given up (64). */
  maxQueue: number;
}

export class ChannelClosed extends Error {
  override name = "ChannelClosed";
}

/** A streamed upload that did not get to its end (the channel closed, no credit in time):
 *  the host cannot have run it, so the caller sends it through the relay, signed anew. */
export class NotDelivered extends ChannelClosed {
  override name = "NotDelivered";
}

/** No answer's head over the channel in time: the caller resends through the relay. */
export class ChannelTimeout extends Error {
  override name = "ChannelTimeout";
}

export class NegotiationFailed extends Error {
  override name = "NegotiationFailed";
}

interface PendingFetch {
  resolve: (response: Response) => void;
  reject: (err: Error) => void;
  signal: AbortSignal | null;
}

/** The host's credit for one upload: how many more body bytes it takes now. */
interface Credit {
  available: number;
  wake: () => void;
}

type SocketMessage = Extract<ChannelMessage, { type: "ws_opened" | "ws_frame" | "ws_close" | "ws_error" }>;

export class DirectChannel {
  private readonly joiner: Reassembler;
  private readonly pending = new Map<string, PendingFetch>();
  private readonly bodies = new Map<string, ReadableStreamDefaultController<Uint8Array>>();
  private readonly sockets = new Map<string, (message: SocketMessage) => void>();
  private readonly credits = new Map<string, Credit>();
  private sending: Promise<void> = Promise.resolve();
  /** The extensions the host's hello named (none until it answers ours). */
  hostExtensions = new Set<string>();
  private helloArrived: () => void = () => undefined;
  private readonly hello = new Promise<void>((resolve) => (this.helloArrived = resolve));
  private closedReason: string | null = null;
  /** The handshake's certificate was compared with the signed answer's fingerprints
   *  (false where the browser does not show it: its own check against the SDP stands). */
  certificateChecked = false;
  private readonly closeListeners: ((reason: string) => void)[] = [];

  private constructor(
    readonly pc: RTCPeerConnection,
    private readonly channel: RTCDataChannel,
    private readonly limits: ChannelLimits,
  ) {
    this.joiner = new Reassembler(limits.maxMessage);
    channel.binaryType = "arraybuffer";
    channel.bufferedAmountLowThreshold = HIGH_WATER / 2;
    channel.onmessage = (event: MessageEvent) => this.onChunk(event.data);
    channel.onclose = () => this.ended("the data channel closed");
    pc.onconnectionstatechange = () => {
      if (pc.connectionState === "failed" || pc.connectionState === "closed") this.ended(`the peer connection ${pc.connectionState}`);
    };
  }

  /** A peer connection, its channel and the complete offer SDP (candidates gathered for
   *  at most `limits.gatherMs`; whatever came by then is offered). */
  static async offer(iceServers: RTCIceServer[], limits: ChannelLimits): Promise<{ channel: DirectChannel; sdp: string }> {
    if (typeof RTCPeerConnection === "undefined") throw new NegotiationFailed("this browser has no WebRTC");
    const pc = new RTCPeerConnection({ iceServers });
    try {
      const dc = pc.createDataChannel(CHANNEL_LABEL, { ordered: true });
      await pc.setLocalDescription(await pc.createOffer());
      await gathered(pc, limits.gatherMs);
      const sdp = pc.localDescription?.sdp ?? "";
      if (!/^a=candidate:/m.test(sdp)) throw new NegotiationFailed("no ICE candidate gathered in time");
      return { channel: new DirectChannel(pc, dc, limits), sdp };
    } catch (err) {
      pc.close();
      throw err instanceof NegotiationFailed ? err : new NegotiationFailed(`cannot make an offer: ${(err as Error).message}`);
    }
  }

  /** Use an answer whose signature the caller has checked: its DTLS fingerprints are the
   *  host's. Waits for the channel to open, then checks the certificate the handshake
   *  presented against them too (where the browser shows it). */
  async accept(answerSdp: string, fingerprints: Set<string>): Promise<void> {
    try {
      await this.pc.setRemoteDescription({ type: "answer", sdp: answerSdp });
    } catch (err) {
      throw new NegotiationFailed(`the browser refused the answer: ${(err as Error).message}`);
    }
    await this.opened();
    await this.checkCertificate(fingerprints);
    // Our extensions; a host that knows them answers with those it takes.
    await this.send({ type: "hello", extensions: EXTENSIONS });
  }

  /** Whether the host's hello named `extension`, waiting at most `waitMs` for it. */
  async offers(extension: string, waitMs = 2000): Promise<boolean> {
    if (!this.hostExtensions.has(extension) && this.closedReason === null) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([this.hello, new Promise<void>((resolve) => (timer = setTimeout(resolve, waitMs)))]);
      clearTimeout(timer);
    }
    return this.hostExtensions.has(extension);
  }

  /** Tell the host a call is given up (it stops its local request), where it said it can. */
  cancel(id: string): void {
    if (this.isOpen && this.hostExtensions.has("cancel")) this.send({ type: "cancel", id, reason: null }).catch(() => undefined);
  }

  private opened(): Promise<void> {
    if (this.channel.readyState === "open") return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new NegotiationFailed("the data channel did not open in time")), this.limits.openMs);
      this.channel.addEventListener("open", () => {
        clearTimeout(timer);
        resolve();
      });
      this.onClose((reason) => {
        clearTimeout(timer);
        reject(new NegotiationFailed(reason));
      });
    });
  }

  private async checkCertificate(fingerprints: Set<string>): Promise<void> {
    const transport = this.pc.sctp?.transport as (RTCDtlsTransport & { getRemoteCertificates?: () => ArrayBuffer[] }) | undefined;
    const certificates = transport?.getRemoteCertificates?.() ?? [];
    const first = certificates[0];
    if (!first) return; // not shown by this browser: its own check against the SDP stands
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", first));
    const hex = Array.from(digest, (b) => b.toString(16).padStart(2, "0").toUpperCase()).join(":");
    if (!fingerprints.has(`sha-256 ${hex}`)) {
      this.close("the host's DTLS certificate is not the one its signed answer names");
      throw new NegotiationFailed("the host's DTLS certificate is not the one its signed answer names");
    }
    this.certificateChecked = true;
  }

  get isOpen(): boolean {
    return this.closedReason === null && this.channel.readyState === "open";
  }

  get reason(): string | null {
    return this.closedReason;
  }

  onClose(listener: (reason: string) => void): void {
    if (this.closedReason !== null) listener(this.closedReason);
    else this.closeListeners.push(listener);
  }

  close(reason = "closed by this page"): void {
    this.ended(reason);
  }

  private ended(reason: string): void {
    if (this.closedReason !== null) return;
    this.closedReason = reason;
    try {
      this.channel.close();
    } catch {
      /* already closed */
    }
    this.pc.close();
    const err = new ChannelClosed(`WebRTC: ${reason}`);
    for (const waiter of this.pending.values()) waiter.reject(err);
    this.pending.clear();
    for (const body of this.bodies.values()) {
      try {
        body.error(err);
      } catch {
        /* already done */
      }
    }
    this.bodies.clear();
    for (const credit of this.credits.values()) credit.wake();
    for (const deliver of [...this.sockets.values()]) deliver({ type: "ws_close", conn_id: "", code: 1006, reason: "WebRTC disconnected" });
    this.sockets.clear();
    for (const listener of this.closeListeners.splice(0)) listener(reason);
  }

  // --------------------------------------------------------------- receiving

  private onChunk(data: unknown): void {
    if (this.closedReason !== null) return;
    let message: ChannelMessage;
    try {
      const chunk = typeof data === "string" ? new TextEncoder().encode(data) : new Uint8Array(data as ArrayBuffer);
      const joined = this.joiner.feed(chunk);
      if (joined === null) return;
      message = decodeMessage(joined);
    } catch (err) {
      if (err instanceof ChunkError || err instanceof MessageError) {
        this.close(`bad message from the host: ${err.message}`);
        return;
      }
      throw err;
    }
    this.dispatch(message);
  }

  private dispatch(message: ChannelMessage): void {
    switch (message.type) {
      case "http_response": {
        const waiter = this.pending.get(message.id);
        if (!waiter) return;
        this.pending.delete(message.id);
        try {
          waiter.resolve(this.response(message, waiter.signal));
        } catch (err) {
          waiter.reject(err as Error);
        }
        return;
      }
      case "body": {
        const body = this.bodies.get(message.id);
        if (!body) return;
        body.enqueue(message.data);
        // A reader that does not keep up: give the channel up rather than hold more.
        if ((body.desiredSize ?? 0) < 0) this.close("a streamed body was not read fast enough");
        return;
      }
      case "body_end": {
        const body = this.bodies.get(message.id);
        if (!body) return;
        this.bodies.delete(message.id);
        if (message.error) body.error(new ChannelClosed(`the host could not finish the body: ${message.error}`));
        else body.close();
        return;
      }
      case "credit": {
        const credit = this.credits.get(message.id);
        if (!credit) return;
        credit.available += message.bytes;
        credit.wake();
        return;
      }
      case "hello":
        this.hostExtensions = message.extensions;
        this.helloArrived();
        return;
      case "cancel": {
        // The host gave the call up (its local server failed under the body).
        const err = new ChannelClosed(`the host cancelled the answer: ${message.reason ?? "no reason given"}`);
        const waiter = this.pending.get(message.id);
        if (waiter) {
          this.pending.delete(message.id);
          waiter.reject(err);
        }
        const body = this.bodies.get(message.id);
        if (body) {
          this.bodies.delete(message.id);
          body.error(err);
        }
        return;
      }
      case "ws_opened":
      case "ws_frame":
      case "ws_close":
      case "ws_error":
        this.sockets.get(message.conn_id)?.(message);
        return;
      default:
        return; // anything a client does not take: ignored
    }
  }

  /** The answer as a Response, for RelayClient to check like a relayed one. */
  private response(message: Extract<ChannelMessage, { type: "http_response" }>, signal: AbortSignal | null): Response {
    const headers = new Headers();
    for (const [name, values] of Object.entries(message.headers)) {
      for (const value of values) {
        try {
          headers.append(name, value);
        } catch {
          /* a name a Response cannot hold: it is not one the signature covers */
        }
      }
    }
    if (message.status < 200 || message.status > 599) {
      throw new ChannelClosed(`the host answered with status ${message.status} over WebRTC`);
    }
    const nullBody = message.status === 204 || message.status === 205 || message.status === 304;
    let body: ReadableStream<Uint8Array> | Uint8Array<ArrayBuffer> | null = null;
    if (message.stream) {
      const id = message.id;
      body = new ReadableStream<Uint8Array>(
        {
          start: (controller) => {
            this.bodies.set(id, controller);
            // The caller's signal ends the body too, as fetch's does (the host's further
            // body messages for it are then dropped on arrival).
            signal?.addEventListener(
              "abort",
              () => {
                if (this.bodies.get(id) !== controller) return;
                this.bodies.delete(id);
                this.cancel(id);
                controller.error(signal.reason instanceof Error ? signal.reason : new DOMException("aborted", "AbortError"));
              },
              { once: true },
            );
          },
          cancel: () => {
            // The reader gave the body up (a closed event stream): so does the host.
            if (this.bodies.delete(id)) this.cancel(id);
          },
        },
        new CountQueuingStrategy({ highWaterMark: this.limits.maxQueue }),
      );
    } else if (message.body.length && !nullBody) {
      body = new Uint8Array(message.body);
    }
    return new Response(nullBody ? null : body, { status: message.status, headers });
  }

  // --------------------------------------------------------------- sending

  /** Send one message (its chunks in order; messages in call order), pausing while the
   *  channel's buffer is over the high-water mark. */
  send(message: ChannelMessage): Promise<void> {
    const chunks = splitMessage(encodeMessage(message));
    const done = this.sending.then(async () => {
      for (const chunk of chunks) {
        if (!this.isOpen) throw new ChannelClosed(`WebRTC: ${this.closedReason ?? "the data channel is not open"}`);
        if (this.channel.bufferedAmount > HIGH_WATER) await this.drained();
        this.channel.send(new Uint8Array(chunk));
      }
    });
    this.sending = done.catch(() => undefined);
    return done;
  }

  private drained(): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        this.channel.removeEventListener("bufferedamountlow", done);
        resolve();
      };
      this.channel.addEventListener("bufferedamountlow", done);
      this.onClose(done);
    });
  }

  /** One http_request; the answer's head (a Response) or ChannelTimeout/ChannelClosed.
   *  `upload`: the body streams in body messages, never more than the host's credit
   *  ahead (NotDelivered when it does not get to its end); the wait for the head starts
   *  once it is all out. A call given up (aborted, timed out) is cancelled on the host. */
  fetch(
    request: { method: string; path: string; headers: ChannelHeaders; body: Uint8Array },
    headTimeoutMs: number,
    signal: AbortSignal | null,
    upload = false,
  ): Promise<Response> {
    const id = crypto.randomUUID();
    return new Promise<Response>((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const startTimer = () => {
        timer = setTimeout(() => {
          this.pending.delete(id);
          this.cancel(id);
          reject(new ChannelTimeout(`no answer over WebRTC within ${headTimeoutMs} ms`));
        }, headTimeoutMs);
      };
      const abort = () => {
        clearTimeout(timer);
        if (this.pending.delete(id)) this.cancel(id);
        this.credits.get(id)?.wake();
        reject(signal?.reason instanceof Error ? signal.reason : new DOMException("aborted", "AbortError"));
      };
      if (signal?.aborted) return abort();
      signal?.addEventListener("abort", abort, { once: true });
      const settled = () => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", abort);
        this.credits.get(id)?.wake();
      };
      this.pending.set(id, {
        signal,
        resolve: (response) => {
          settled();
          resolve(response);
        },
        reject: (err) => {
          settled();
          reject(err);
        },
      });
      const fail = (err: Error) => {
        const waiter = this.pending.get(id);
        if (!waiter) return;
        this.pending.delete(id);
        waiter.reject(err);
      };
      if (!upload) {
        startTimer();
        this.send({ type: "http_request", id, ...request, stream: true, upload: false }).catch(fail);
        return;
      }
      const credit: Credit = { available: 0, wake: () => undefined };
      this.credits.set(id, credit);
      this.send({ type: "http_request", id, ...request, body: new Uint8Array(0), stream: true, upload: true })
        .then(() => this.sendBody(id, request.body, credit, headTimeoutMs))
        .then((complete) => {
          if (complete && this.pending.has(id)) startTimer();
        })
        .catch((err: Error) => {
          this.cancel(id);
          fail(err instanceof NotDelivered ? err : new NotDelivered(`WebRTC: the upload broke off: ${err.message}`));
        })
        .finally(() => this.credits.delete(id));
    });
  }

  /** The body in body messages within the host's credit; false when the call ended first
   *  (an early answer, an abort), true once body_end is out. */
  private async sendBody(id: string, body: Uint8Array, credit: Credit, waitMs: number): Promise<boolean> {
    for (let start = 0; start < body.length; start += CHUNK_BODY) {
      const piece = body.subarray(start, Math.min(start + CHUNK_BODY, body.length));
      while (credit.available < piece.length) {
        if (!this.pending.has(id)) return false;
        if (!this.isOpen) throw new NotDelivered(`WebRTC: ${this.closedReason ?? "the data channel closed"}`);
        const more = await new Promise<boolean>((resolve) => {
          const timer = setTimeout(() => resolve(false), waitMs);
          credit.wake = () => {
            clearTimeout(timer);
            resolve(true);
          };
        });
        if (!more) throw new NotDelivered(`WebRTC: no credit from the host within ${waitMs} ms`);
      }
      if (!this.pending.has(id)) return false;
      credit.available -= piece.length;
      await this.send({ type: "body", id, data: piece.slice() });
    }
    if (!this.pending.has(id)) return false;
    await this.send({ type: "body_end", id, error: null });
    return true;
  }

  /** Register a WebSocket's message handler; returns its conn_id and a remover. */
  socket(deliver: (message: SocketMessage) => void): { connId: string; remove: () => void } {
    const connId = crypto.randomUUID();
    if (this.closedReason !== null) {
      queueMicrotask(() => deliver({ type: "ws_close", conn_id: connId, code: 1006, reason: "WebRTC disconnected" }));
    } else {
      this.sockets.set(connId, deliver);
    }
    return { connId, remove: () => this.sockets.delete(connId) };
  }
}

function gathered(pc: RTCPeerConnection, ms: number): Promise<void> {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    pc.addEventListener("icegatheringstatechange", () => {
      if (pc.iceGatheringState === "complete") {
        clearTimeout(timer);
        resolve();
      }
    });
  });
}
