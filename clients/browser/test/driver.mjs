// The SDK's parsers behind JSON lines on stdin/stdout, for the differential fuzz in
// tests/browser/test_sdk_fuzz.py (hypothesis feeds the same input to the Python client
// and to this, and compares the decisions).
import { createInterface } from "node:readline";
import { sdk, unb64 } from "./helpers.mjs";

const { keys, verify, frames } = sdk.protocol;
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
