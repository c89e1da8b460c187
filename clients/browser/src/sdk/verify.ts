// Checking the host's answers (docs/signing.md, "Signed answers"). An answer is bound to
// the request it answers: same signing session, same request nonce, same path-and-query;
// so the relay can neither forge one nor hand us an old one or another request's.
// Nothing unverified is ever handed out: a whole body only once its hash checks out, a
// chunked-v1 body record by record, each after its own signature checked out.
import { b64decode, concat } from "./bytes";
import { SignatureInvalid } from "./errors";
import type { HostKey } from "./keys";
import * as wire from "./wire";

export const MAX_NONCE_LENGTH = 128;

/** What the signature of one request bound, to check its answer against. */
export interface SignedRequestInfo {
  sessionId: string;
  nonce: string;
  pathAndQuery: string;
}

export interface ResponseHead {
  status: number;
  ts: string;
  responseNonce: string;
  signature: Uint8Array;
  streamed: boolean;
  /** Response headers whose values the signature covers: those the host named in
   *  x-vk-resp-headers, and the signature's own. */
  signedHeaders: Headers;
  /** The digest of the named headers, bound into the signature (null: the answer to a
   *  request that did not sign its headers). */
  hHeaders: string | null;
}

/** Parse the signature headers of an answer; SignatureInvalid when missing or malformed.
 *  `signsHeaders`: the request signed its headers, so the answer must sign its own (an
 *  answer that names its signed headers is checked with them either way). */
export function parseHead(status: number, headers: Headers, signsHeaders = false): ResponseHead {
  const ts = headers.get(wire.RESP_TS);
  const responseNonce = headers.get(wire.RESP_NONCE);
  const signatureB64 = headers.get(wire.RESP_SIGNATURE);
  if (ts === null || responseNonce === null || signatureB64 === null) {
    throw new SignatureInvalid(`the answer (${status}) carries no host signature`);
  }
  if (!/^[0-9]{1,20}$/.test(ts)) throw new SignatureInvalid("the answer's signature timestamp is malformed");
  if (
    responseNonce.length === 0 ||
    responseNonce.length > MAX_NONCE_LENGTH ||
    responseNonce.includes("|") ||
    !/^[\x20-\x7e]+$/.test(responseNonce)
  ) {
    throw new SignatureInvalid("the answer's nonce is malformed");
  }
  let signature: Uint8Array;
  try {
    signature = b64decode(signatureB64, wire.SIGNATURE_SIZE);
  } catch {
    throw new SignatureInvalid("the answer's signature is malformed");
  }
  const mode = headers.get(wire.RESP_BODY_SIGNING);
  if (mode !== null && mode !== wire.STREAM_SIGNING_V1) {
    throw new SignatureInvalid(`unknown response body signing ${JSON.stringify(mode.slice(0, 40))}`);
  }
  const signedHeaders = new Headers();
  for (const name of [wire.RESP_TS, wire.RESP_NONCE, wire.RESP_SIGNATURE, wire.RESP_BODY_SIGNING]) {
    const value = headers.get(name);
    if (value !== null) signedHeaders.set(name, value);
  }
  let hHeaders: string | null = null;
  const listed = headers.get(wire.RESP_HEADERS);
  if (listed === null && signsHeaders) throw new SignatureInvalid(`the answer (${status}) does not sign its headers`);
  // Also on an answer to a request signed the reference way (the host says it verifies
  // signed headers): the digest is in the signature, so a relay cannot remove the list.
  if (listed !== null) {
    let names: string[];
    try {
      names = wire.parseHeaderList(listed);
    } catch (err) {
      throw new SignatureInvalid(`the answer's ${wire.RESP_HEADERS}: ${(err as Error).message}`);
    }
    try {
      hHeaders = wire.headersHash(names, (name) => headers.get(name));
    } catch {
      throw new SignatureInvalid("the answer's headers are not byte strings");
    }
    for (const name of names) {
      const value = headers.get(name);
      if (value !== null) signedHeaders.set(name, value);
    }
  }
  return { status, ts, responseNonce, signature, streamed: mode !== null, signedHeaders, hHeaders };
}

/** Check the header signature over `hBody` (H(body), or "chunked-v1" for a streamed one). */
export async function verifyHead(
  key: HostKey,
  request: SignedRequestInfo,
  head: ResponseHead,
  hBody: string,
): Promise<void> {
  const message = wire.responseMessage(
    head.ts,
    head.status,
    request.pathAndQuery,
    request.sessionId,
    request.nonce,
    head.responseNonce,
    hBody,
    head.hHeaders,
  );
  if (!(await key.verify(head.signature, message))) {
    throw new SignatureInvalid(`answer (${head.status}): the host's signature does not verify`);
  }
}

/** Splits a chunked-v1 body into records and checks each one, in order. Holds at most
 *  one record. `feed` returns the payloads of the records it completed, all verified. */
export class StreamVerifier {
  private buffer: Uint8Array = new Uint8Array(0);
  private seq = 0;
  done = false;

  constructor(
    private readonly key: HostKey,
    private readonly request: SignedRequestInfo,
    private readonly responseNonce: string,
    private readonly maxPayload = wire.MAX_CHUNK_PAYLOAD,
  ) {}

  async feed(data: Uint8Array): Promise<Uint8Array[]> {
    if (this.done) {
      if (data.length) throw new SignatureInvalid("data after the final record of a signed body");
      return [];
    }
    this.buffer = this.buffer.length ? concat(this.buffer, data) : data.slice();
    const payloads: Uint8Array[] = [];
    const header = wire.CHUNK_HEADER_SIZE;
    while (this.buffer.length >= header) {
      const view = new DataView(this.buffer.buffer, this.buffer.byteOffset, this.buffer.byteLength);
      const length = view.getUint32(0, false);
      if (length > this.maxPayload) throw new SignatureInvalid(`a signed body record claims ${length} bytes`);
      const end = header + length + wire.SIGNATURE_SIZE;
      if (this.buffer.length < end) break;
      const payload = this.buffer.slice(header, header + length);
      const signature = this.buffer.subarray(header + length, end);
      this.seq += 1;
      const message = wire.streamChunkMessage(
        this.request.sessionId,
        this.request.nonce,
        this.responseNonce,
        this.seq,
        payload,
      );
      if (!(await this.key.verify(signature, message))) {
        throw new SignatureInvalid(`body record ${this.seq}: the host's signature does not verify`);
      }
      this.buffer = this.buffer.subarray(end);
      if (payload.length === 0) {
        this.done = true;
        if (this.buffer.length) throw new SignatureInvalid("data after the final record of a signed body");
        break;
      }
      payloads.push(payload);
    }
    return payloads;
  }

  finish(): void {
    if (!this.done) throw new SignatureInvalid("the signed body was cut short (no final record)");
  }
}

/** A stream of the verified payloads of a chunked-v1 body: it errors (SignatureInvalid)
 *  on the first bad record, and never hands out bytes before their record checked out. */
export function verifiedStream(
  source: ReadableStream<Uint8Array>,
  verifier: StreamVerifier,
  onError: (err: unknown) => unknown = (err) => err,
): ReadableStream<Uint8Array> {
  const reader = source.getReader();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      // Pull until at least one payload is out (or the end), so a consumer's read()
      // always makes progress.
      for (;;) {
        let chunk: ReadableStreamReadResult<Uint8Array>;
        try {
          chunk = await reader.read();
        } catch (err) {
          controller.error(onError(err));
          return;
        }
        try {
          if (chunk.done) {
            verifier.finish();
            controller.close();
            return;
          }
          const payloads = await verifier.feed(chunk.value);
          for (const payload of payloads) controller.enqueue(payload);
          if (payloads.length || verifier.done) {
            if (verifier.done) {
              // The final record: whatever follows is an error, which feed() reports.
              const rest = await reader.read().catch(() => ({ done: true, value: undefined }));
              if (!rest.done && rest.value && rest.value.length) await verifier.feed(rest.value);
              verifier.finish();
              controller.close();
              reader.cancel().catch(() => undefined);
            }
            return;
          }
        } catch (err) {
          reader.cancel().catch(() => undefined);
          controller.error(err);
          return;
        }
      }
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  });
}
