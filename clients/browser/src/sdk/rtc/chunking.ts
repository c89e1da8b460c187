// The data channel's chunk framing (docs/webrtc.md, "Framing"), as the host's
// agent_relay.webrtc.chunking: one header byte (0x07 last, 0x06 more follow; only bit 0
// is read), then at most 61,440 payload bytes. Chunks of two messages never interleave.

export const CHUNK_PAYLOAD = 61_440;
export const MORE = 0x06;
export const LAST = 0x07;

export class ChunkError extends Error {
  override name = "ChunkError";
}

/** The chunks that carry `message` (an empty message is one empty last chunk). */
export function splitMessage(message: Uint8Array, chunkPayload = CHUNK_PAYLOAD): Uint8Array[] {
  if (!(chunkPayload > 0 && chunkPayload <= CHUNK_PAYLOAD)) throw new RangeError(`chunkPayload must be in 1..${CHUNK_PAYLOAD}`);
  const chunks: Uint8Array[] = [];
  for (let start = 0; ; start += chunkPayload) {
    const stop = start + chunkPayload;
    const last = stop >= message.length;
    const part = message.subarray(start, last ? message.length : stop);
    const chunk = new Uint8Array(part.length + 1);
    chunk[0] = last ? LAST : MORE;
    chunk.set(part, 1);
    chunks.push(chunk);
    if (last) return chunks;
  }
}

/** Joins chunks into messages, refusing any message over `maxMessage` bytes. */
export class Reassembler {
  private parts: Uint8Array[] = [];
  private size = 0;

  constructor(private readonly maxMessage: number) {}

  get pending(): number {
    return this.size;
  }

  /** The complete message `chunk` ends, or null while more are to come. */
  feed(chunk: Uint8Array): Uint8Array | null {
    if (chunk.length === 0) throw new ChunkError("empty chunk (no header byte)");
    if (chunk.length - 1 > CHUNK_PAYLOAD) throw new ChunkError(`chunk over ${CHUNK_PAYLOAD} payload bytes`);
    this.size += chunk.length - 1;
    if (this.size > this.maxMessage) throw new ChunkError(`message over ${this.maxMessage} bytes`);
    this.parts.push(chunk.subarray(1));
    if (!((chunk[0] as number) & 0x01)) return null;
    const message = new Uint8Array(this.size);
    let at = 0;
    for (const part of this.parts) {
      message.set(part, at);
      at += part.length;
    }
    this.parts = [];
    this.size = 0;
    return message;
  }
}
