// A WebSocket over the data channel (ws_open, ws_opened, ws_frame, ws_close, ws_error),
// with the RelayWebSocket interface. Its ws_open carries the signature headers of the
// upgrade, admitted by the host exactly like a relayed upgrade; its frames carry no
// signature of their own (the channel's DTLS keys are bound to the signed offer and the
// signed answer, so nobody else can write on it). If the channel cannot open it (no
// channel, the host refused, no answer in time) the socket opens through the relay
// instead, transparently; once open it stays on its path (a dropped channel ends it with
// 1006, as a dropped relay connection does).
import type { RelayWebSocket } from "../client";
import { utf8 } from "../bytes";
import type { ChannelHeaders } from "./messages";
import type { DirectChannel } from "./peer";

const CONNECTING = 0;
const OPEN = 1;
const CLOSED = 3;

export class ChannelWebSocket implements RelayWebSocket {
  onopen: (() => void) | null = null;
  onmessage: ((ev: { data: string | Uint8Array }) => void) | null = null;
  onclose: ((ev: { code: number; reason: string }) => void) | null = null;
  onerror: ((err: Error) => void) | null = null;
  /** "direct" once open over the channel, "relayed" once it fell back. */
  path: "direct" | "relayed" | null = null;
  private state = CONNECTING;
  private inner: RelayWebSocket | null = null;
  private connId = "";
  private remove: () => void = () => undefined;

  constructor(
    private readonly channel: DirectChannel,
    prepare: () => Promise<{ path: string; headers: ChannelHeaders }>,
    private readonly fallback: () => RelayWebSocket,
    private readonly openTimeoutMs: number,
  ) {
    void this.open(prepare);
  }

  get readyState(): number {
    return this.inner ? this.inner.readyState : this.state;
  }

  private async open(prepare: () => Promise<{ path: string; headers: ChannelHeaders }>): Promise<void> {
    let prepared;
    try {
      prepared = await prepare();
    } catch {
      this.toRelay();
      return;
    }
    if (this.state !== CONNECTING) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const registered = this.channel.socket((message) => {
      switch (message.type) {
        case "ws_opened":
          if (this.state !== CONNECTING) return;
          clearTimeout(timer);
          this.state = OPEN;
          this.path = "direct";
          this.onopen?.();
          return;
        case "ws_frame":
          if (this.state !== OPEN) return;
          if (message.msg_type === "text") this.onmessage?.({ data: new TextDecoder().decode(message.payload) });
          else if (message.msg_type === "binary") this.onmessage?.({ data: message.payload });
          return;
        case "ws_close":
        case "ws_error":
          clearTimeout(timer);
          if (this.state === CONNECTING) {
            this.toRelay(); // the channel could not open it: the relay can
            return;
          }
          if (message.type === "ws_error") this.onerror?.(new Error(message.error));
          this.finish(message.type === "ws_close" ? (message.code ?? 1005) : 1006, message.type === "ws_close" ? (message.reason ?? "") : message.error);
          return;
      }
    });
    this.connId = registered.connId;
    this.remove = registered.remove;
    timer = setTimeout(() => {
      if (this.state === CONNECTING) this.toRelay();
    }, this.openTimeoutMs);
    this.channel
      .send({ type: "ws_open", conn_id: this.connId, path: prepared.path, protocols: null, headers: prepared.headers })
      .catch(() => {
        clearTimeout(timer);
        if (this.state === CONNECTING) this.toRelay();
      });
  }

  private toRelay(): void {
    this.remove();
    if (this.state !== CONNECTING || this.inner) return;
    const inner = this.fallback();
    this.inner = inner;
    this.path = "relayed";
    inner.onopen = () => this.onopen?.();
    inner.onmessage = (ev) => this.onmessage?.(ev);
    inner.onclose = (ev) => this.onclose?.(ev);
    inner.onerror = (err) => this.onerror?.(err);
  }

  private finish(code: number, reason: string): void {
    if (this.state === CLOSED) return;
    this.state = CLOSED;
    this.remove();
    this.onclose?.({ code, reason });
  }

  send(data: string | Uint8Array): void {
    if (this.inner) return this.inner.send(data);
    if (this.state !== OPEN) throw new Error("the WebSocket is not open");
    const frame = typeof data === "string"
      ? { type: "ws_frame" as const, conn_id: this.connId, msg_type: "text", payload: utf8(data) }
      : { type: "ws_frame" as const, conn_id: this.connId, msg_type: "binary", payload: data };
    this.channel.send(frame).catch((err: Error) => {
      this.onerror?.(err);
      this.finish(1006, "WebRTC disconnected");
    });
  }

  close(code = 1000, reason = ""): void {
    if (this.inner) return this.inner.close(code, reason);
    if (this.state === CLOSED) return;
    const wasOpen = this.state === OPEN;
    if (wasOpen || this.connId) {
      this.channel.send({ type: "ws_close", conn_id: this.connId, code, reason: reason || null }).catch(() => undefined);
    }
    this.finish(code, reason);
  }
}
