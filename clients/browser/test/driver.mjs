// The SDK's parsers behind JSON lines on stdin/stdout, for the differential fuzz in
// tests/browser/test_sdk_fuzz.py (hypothesis feeds the same input to the Python client
// and to this, and compares the decisions).
import { createInterface } from "node:readline";
import { sdk, unb64 } from "./helpers.mjs";

const { keys, verify, frames, rtc } = sdk.protocol;
const hostKeys = new Map();
const hostKey = (b64) => {
  if (!hostKeys.has(b64)) hostKeys.set(b64, new keys.HostKey(unb64(b64)));
  return hostKeys.get(b64);
};

const ops = {
  // A chunked-v1 body fed in the given reads: payload bytes handed out, accepted or not.
  async stream(req) {
    const verifier = new verify.StreamVerifier(hostKey(req.host_public_b64), {
      sessionId: req.session_id,
      nonce: req.request_nonce,
      pathAndQuery: "/",
    }, req.response_nonce);
    const body = unb64(req.body_b64);
    let out = 0;
    let at = 0;
    try {
      for (const size of req.reads) {
        for (const p of await verifier.feed(body.subarray(at, at + size))) out += p.length;
        at += size;
      }
      verifier.finish();
      return { accepted: true, prefix: out };
    } catch (err) {
      if (!(err instanceof sdk.SignatureInvalid)) return { crash: String(err) };
      return { accepted: false, prefix: out };
    }
  },
  // Envelopes opened in order until the first refusal: how many opened, and what.
  async frames(req) {
    const verifier = new frames.FrameVerifier(hostKey(req.host_public_b64), req.session_id, req.upgrade_nonce);
    const opened = [];
    for (const envelope of req.envelopes) {
      try {
        const frame = await verifier.open(envelope);
        opened.push([frame.msgType, Buffer.from(frame.payload).toString("base64")]);
      } catch (err) {
        if (!(err instanceof sdk.SignatureInvalid)) return { crash: String(err) };
        break;
      }
    }
    return { opened };
  },
  // One data-channel message: refused, or accepted and written back out.
  async rtc_message(req) {
    try {
      const message = rtc.messages.decodeMessage(unb64(req.data_b64));
      return { accepted: true, type: message.type, encoded: new TextDecoder().decode(rtc.messages.encodeMessage(message)) };
    } catch (err) {
      if (!(err instanceof rtc.messages.MessageError)) return { crash: String(err) };
      return { accepted: false };
    }
  },
  // Chunks fed to a reassembler: the messages out, and where (if) it refused.
  async rtc_chunks(req) {
    const joiner = new rtc.chunking.Reassembler(req.max_message);
    const messages = [];
    for (const [i, chunk] of req.chunks_b64.entries()) {
      try {
        const message = joiner.feed(unb64(chunk));
        if (message !== null) messages.push(Buffer.from(message).toString("base64"));
      } catch (err) {
        if (!(err instanceof rtc.chunking.ChunkError)) return { crash: String(err) };
        return { messages, refused_at: i };
      }
    }
    const split = rtc.chunking.splitMessage(unb64(req.split_b64), req.chunk_payload).map((c) => Buffer.from(c).toString("base64"));
    return { messages, refused_at: null, split };
  },
};

const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  let answer;
  try {
    const req = JSON.parse(line);
    answer = await ops[req.op](req);
  } catch (err) {
    answer = { crash: String(err?.stack ?? err) };
  }
  process.stdout.write(JSON.stringify(answer) + "\n");
}
