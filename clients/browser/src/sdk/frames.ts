// Signed WebSocket frames (docs/signing.md, "Signed WebSocket frames"): every message
// both ways is a JSON envelope signed over the upgrade's session and nonce and a
// per-direction sequence number that rises by exactly one.
import { b64decode, b64encode } from "./bytes";
import { SignatureInvalid } from "./errors";
import { type HostKey, sign } from "./keys";
import * as wire from "./wire";

export const MSG_TYPES = new Set(["text", "binary", "ping", "pong", "close"]);
export const MAX_ENVELOPE_SIZE = 16 * 1024 * 1024 + 4096;

export interface Frame {
  msgType: string;
  payload: Uint8Array;
}

export function closePayload(code: number, reason = ""): Uint8Array {
  const text = new TextEncoder().encode(reason);
  const out = new Uint8Array(2 + text.length);
  new DataView(out.buffer).setUint16(0, code, false);
  out.set(text, 2);
  return out;
}

export function parseClosePayload(payload: Uint8Array): { code: number; reason: string } {
  if (payload.length < 2) return { code: 1005, reason: "" };
  const code = new DataView(payload.buffer, payload.byteOffset, payload.byteLength).getUint16(0, false);
  return { code, reason: new TextDecoder().decode(payload.subarray(2)) };
}

export class FrameSigner {
  private seq = 0;
  constructor(
    private readonly key: CryptoKey | Uint8Array,
    private readonly sessionId: string,
    private readonly upgradeNonce: string,
  ) {}

  /** The next envelope. Sequence numbers are taken in call order, so callers must send
   *  the envelopes in the order they asked for them. */
  async sign(msgType: string, payload: Uint8Array): Promise<string> {
    if (!MSG_TYPES.has(msgType)) throw new Error(`unknown frame type ${msgType}`);
    const seq = ++this.seq;
    const signature = await sign(this.key, wire.frameMessage(this.sessionId, this.upgradeNonce, seq, msgType, payload));
    return JSON.stringify({
      version: 1,
      seq,
      msg_type: msgType,
      payload_b64: b64encode(payload),
      signature_b64: b64encode(signature),
    });
  }
}

export class FrameVerifier {
  private seq = 0;
  constructor(
    private readonly key: HostKey,
    private readonly sessionId: string,
    private readonly upgradeNonce: string,
  ) {}

  /** The frame in `message`, checked; SignatureInvalid for anything else. Call in order. */
  async open(message: string | Uint8Array): Promise<Frame> {
    if (message.length > MAX_ENVELOPE_SIZE) throw new SignatureInvalid("a WebSocket frame envelope is too large");
    let envelope: unknown;
    try {
      envelope = JSON.parse(typeof message === "string" ? message : new TextDecoder("utf-8", { fatal: true }).decode(message));
    } catch {
      throw new SignatureInvalid("a WebSocket frame is not a signed envelope");
    }
    if (typeof envelope !== "object" || envelope === null || Array.isArray(envelope)) {
      throw new SignatureInvalid("a WebSocket frame is not a signed envelope");
    }
    const e = envelope as Record<string, unknown>;
    const payloadB64 = e.payload_b64 ?? "";
    if (e.version !== 1) throw new SignatureInvalid(`unknown frame envelope version ${String(e.version).slice(0, 20)}`);
    if (
      typeof e.seq !== "number" ||
      !Number.isSafeInteger(e.seq) ||
      typeof e.msg_type !== "string" ||
      !MSG_TYPES.has(e.msg_type) ||
      typeof payloadB64 !== "string" ||
      typeof e.signature_b64 !== "string"
    ) {
      throw new SignatureInvalid("a WebSocket frame envelope is malformed");
    }
    if (e.seq !== this.seq + 1) {
      throw new SignatureInvalid(
        `WebSocket frame ${e.seq} arrived where ${this.seq + 1} was due (dropped, reordered or replayed)`,
      );
    }
    let payload: Uint8Array;
    let signature: Uint8Array;
    try {
      payload = b64decode(payloadB64);
      signature = b64decode(e.signature_b64, wire.SIGNATURE_SIZE);
    } catch {
      throw new SignatureInvalid("a WebSocket frame envelope is malformed");
    }
    const signed = wire.frameMessage(this.sessionId, this.upgradeNonce, e.seq, e.msg_type, payload);
    if (!(await this.key.verify(signature, signed))) {
      throw new SignatureInvalid(`WebSocket frame ${e.seq}: the host's signature does not verify`);
    }
    this.seq = e.seq;
    return { msgType: e.msg_type, payload };
  }
}
