// The SDK against the vectors the Python implementation made: same signed strings,
// same signatures (Ed25519 is deterministic), same SPAKE2 messages and keys, same
// decisions on chunked-v1 bodies and frame envelopes.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { test } from "node:test";
import { ed25519 } from "@noble/curves/ed25519.js";
import { b64, hex, sdk, unb64, unhex, utf8, vectors } from "./helpers.mjs";

const { wire, spake2, verify, frames, keys } = sdk.protocol;
const canonical = vectors("canonical");
const K = canonical.keys;
const clientSeed = unhex(K.client_seed_hex);
const hostKey = () => new keys.HostKey(unb64(K.host_public_b64));

test("request strings and signatures match Python's", () => {
  for (const c of canonical.requests) {
    const body = unb64(c.body_b64);
    assert.equal(wire.bodyHash(body), c.h_body);
    const message = wire.requestMessage(c.ts, c.method, c.path_and_query, K.session_id, K.request_nonce, wire.bodyHash(body));
    assert.equal(new TextDecoder().decode(message), c.message);
    assert.equal(b64(ed25519.sign(message, clientSeed)), c.signature_b64);
  }
  assert.equal(wire.bodyHash(new Uint8Array(0)), canonical.empty_body_hash);
});

test("the client key signs through protocol.keys.sign like Python (noble key)", async () => {
  const c = canonical.requests[1];
  assert.equal(b64(await keys.sign(clientSeed, utf8(c.message))), c.signature_b64);
});

test("refresh string and signature match Python's", () => {
  const r = canonical.refresh;
  const message = wire.refreshMessage(r.timestamp, r.nonce, r.client_id);
  assert.equal(new TextDecoder().decode(message), r.message);
  assert.equal(b64(ed25519.sign(message, clientSeed)), r.signature_b64);
});

test("WebSocket query re-serialisation matches the host's", () => {
  for (const c of canonical.ws_paths) assert.equal(wire.signedWsPath(c.path, c.pairs), c.signed);
});

test("signed buffered responses verify; altered ones do not", async () => {
  for (const c of canonical.responses) {
    const head = verify.parseHead(c.status, new Headers(c.headers));
    const request = { sessionId: K.session_id, nonce: K.request_nonce, pathAndQuery: c.path_and_query };
    const body = unb64(c.body_b64);
    await verify.verifyHead(hostKey(), request, head, wire.bodyHash(body));
    const altered = body.length ? body.map((b, i) => (i === 0 ? b ^ 1 : b)) : utf8(" ");
    await assert.rejects(verify.verifyHead(hostKey(), request, head, wire.bodyHash(altered)), sdk.SignatureInvalid);
    // Another path, status or request nonce: the answer is not for this request.
    await assert.rejects(verify.verifyHead(hostKey(), { ...request, pathAndQuery: c.path_and_query + "x" }, head, wire.bodyHash(body)), sdk.SignatureInvalid);
    await assert.rejects(verify.verifyHead(hostKey(), { ...request, nonce: K.response_nonce }, head, wire.bodyHash(body)), sdk.SignatureInvalid);
    const otherStatus = verify.parseHead(c.status + 1, new Headers(c.headers));
    await assert.rejects(verify.verifyHead(hostKey(), request, otherStatus, wire.bodyHash(body)), sdk.SignatureInvalid);
  }
});

test("a response head without or with a malformed signature is refused", () => {
  const good = canonical.responses[0].headers;
  assert.throws(() => verify.parseHead(200, new Headers()), sdk.SignatureInvalid);
  for (const [name, value] of [
    ["x-vk-resp-ts", "12a"],
    ["x-vk-resp-nonce", "a|b"],
    ["x-vk-resp-signature", "AAAA"],
    ["x-vk-resp-body-signing", "chunked-v2"],
  ]) {
    assert.throws(() => verify.parseHead(200, new Headers({ ...good, [name]: value })), sdk.SignatureInvalid, name);
  }
});

test("SPAKE2 side A: same message and key as the Python package, same proofs", () => {
  for (const c of vectors("spake2").cases) {
    const a = new spake2.Spake2A(c.code, unhex(c.entropy_a_hex));
    assert.equal(hex(a.message), c.message_a_hex, c.code);
    const key = a.finish(unhex(c.message_b_hex));
    assert.equal(hex(key), c.key_hex);
    const ck = spake2.confirmationKey(key);
    assert.equal(hex(ck), c.ck_hex);
    const clientPublic = unb64(c.client_public_b64);
    assert.equal(b64(spake2.clientProof(ck, c.enrollment_id, clientPublic)), c.client_proof_b64);
    assert.equal(b64(spake2.serverProof(ck, c.enrollment_id, clientPublic, unb64(c.server_public_b64))), c.server_proof_b64);
  }
});

test("SPAKE2 refuses a wrong-side, short or off-group message, and a second finish", () => {
  const c = vectors("spake2").cases[0];
  const b = unhex(c.message_b_hex);
  assert.throws(() => new spake2.Spake2A(c.code, unhex(c.entropy_a_hex)).finish(b.slice(0, 32)));
  const wrongSide = b.slice();
  wrongSide[0] = 0x41;
  assert.throws(() => new spake2.Spake2A(c.code, unhex(c.entropy_a_hex)).finish(wrongSide));
  const identity = new Uint8Array(33);
  identity[0] = 0x42;
  identity[1] = 1; // the encoding of the neutral element
  assert.throws(() => new spake2.Spake2A(c.code, unhex(c.entropy_a_hex)).finish(identity));
  const a = new spake2.Spake2A(c.code, unhex(c.entropy_a_hex));
  a.finish(b);
  assert.throws(() => a.finish(b));
  // A wrong code gives another key (the proofs then fail on both sides).
  const wrong = new spake2.Spake2A("AB12CE", unhex(c.entropy_a_hex)).finish(b);
  assert.notEqual(hex(wrong), c.key_hex);
});

const chunked = vectors("chunked");
const records = chunked.records_b64.map(unb64);
const request = { sessionId: K.session_id, nonce: K.request_nonce, pathAndQuery: chunked.path_and_query };
const joined = (order, flip) => {
  const parts = order.map((i) => records[i]);
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  if (flip !== null) out[flip] ^= 1;
  return out;
};
const reads = (body, size = 1000) => {
  const out = [];
  for (let at = 0; at < body.length; at += size) out.push(body.subarray(at, at + size));
  return out;
};

test("chunked-v1: the head signature over 'chunked-v1' verifies", async () => {
  const head = verify.parseHead(200, new Headers({
    "x-vk-resp-ts": String(chunked.resp_ts),
    "x-vk-resp-nonce": K.response_nonce,
    "x-vk-resp-signature": chunked.head_signature_b64,
    "x-vk-resp-body-signing": "chunked-v1",
  }));
  assert.equal(head.streamed, true);
  await verify.verifyHead(hostKey(), request, head, "chunked-v1");
});

test("chunked-v1: the good body verifies whole, whatever the read sizes", async () => {
  for (const size of [1, 7, 1000, 70000, 1 << 20]) {
    const v = new verify.StreamVerifier(hostKey(), request, K.response_nonce);
    const hash = createHash("sha256");
    let total = 0;
    const body = joined(records.map((_, i) => i), null);
    for (const chunk of reads(body, size)) for (const p of await v.feed(chunk)) {
      hash.update(p);
      total += p.length;
    }
    v.finish();
    assert.equal(total, chunked.payload_size);
    assert.equal(hash.digest("hex"), chunked.payload_sha256_hex);
    if (size === 70000) break; // enough for the slow 1-byte case once
  }
});

test("chunked-v1: each altered body is refused after exactly the bytes Python hands out", async () => {
  for (const c of chunked.bad) {
    const v = new verify.StreamVerifier(hostKey(), request, K.response_nonce);
    let out = 0;
    let refused = null;
    try {
      for (const chunk of reads(joined(c.records, c.flip))) for (const p of await v.feed(chunk)) out += p.length;
      v.finish();
    } catch (err) {
      refused = err;
    }
    assert.ok(refused instanceof sdk.SignatureInvalid, `${c.name}: ${refused}`);
    assert.equal(out, c.verified_prefix, c.name);
  }
});

function sourceOf(chunks) {
  return new ReadableStream({
    pull(controller) {
      const next = chunks.shift();
      if (next) controller.enqueue(next.slice());
      else controller.close();
    },
  });
}

test("verifiedStream: hands out only verified bytes and errors on the first bad record", async () => {
  const good = verify.verifiedStream(sourceOf(reads(joined(records.map((_, i) => i), null))), new verify.StreamVerifier(hostKey(), request, K.response_nonce));
  const hash = createHash("sha256");
  for await (const p of good) hash.update(p);
  assert.equal(hash.digest("hex"), chunked.payload_sha256_hex);
  for (const c of chunked.bad) {
    const stream = verify.verifiedStream(sourceOf(reads(joined(c.records, c.flip))), new verify.StreamVerifier(hostKey(), request, K.response_nonce));
    let out = 0;
    await assert.rejects(
      (async () => {
        for await (const p of stream) out += p.length;
      })(),
      sdk.SignatureInvalid,
      c.name,
    );
    assert.equal(out, c.verified_prefix, c.name);
  }
});

const framesV = vectors("frames");

test("frames: the host's envelopes open, in order only", async () => {
  const v = new frames.FrameVerifier(hostKey(), K.session_id, framesV.upgrade_nonce);
  for (const f of framesV.from_host) {
    const opened = await v.open(f.envelope);
    assert.equal(opened.msgType, f.msg_type);
    assert.equal(b64(opened.payload), f.payload_b64);
  }
  const close = frames.parseClosePayload(unb64(framesV.from_host.at(-1).payload_b64));
  assert.deepEqual(close, { code: 1008, reason: "client revoked" });
  // Replayed, skipped, reordered, altered: refused.
  const fresh = () => new frames.FrameVerifier(hostKey(), K.session_id, framesV.upgrade_nonce);
  await assert.rejects(fresh().open(framesV.from_host[1].envelope), sdk.SignatureInvalid);
  const v2 = fresh();
  await v2.open(framesV.from_host[0].envelope);
  await assert.rejects(v2.open(framesV.from_host[0].envelope), sdk.SignatureInvalid);
  const altered = JSON.parse(framesV.from_host[0].envelope);
  altered.payload_b64 = b64(utf8("echo:hellp"));
  await assert.rejects(fresh().open(JSON.stringify(altered)), sdk.SignatureInvalid);
  const otherType = JSON.parse(framesV.from_host[0].envelope);
  otherType.msg_type = "binary";
  await assert.rejects(fresh().open(JSON.stringify(otherType)), sdk.SignatureInvalid);
  for (const junk of ["", "[]", "null", '{"version":2}', "{", '{"version":1,"seq":"1","msg_type":"text","signature_b64":"x"}']) {
    await assert.rejects(fresh().open(junk), sdk.SignatureInvalid, junk);
  }
  // Another upgrade's nonce: not this socket's frames.
  await assert.rejects(new frames.FrameVerifier(hostKey(), K.session_id, K.response_nonce).open(framesV.from_host[0].envelope), sdk.SignatureInvalid);
});

test("frames: our envelopes are byte for byte the ones Python signs", async () => {
  const s = new frames.FrameSigner(clientSeed, K.session_id, framesV.upgrade_nonce);
  for (const f of framesV.from_client) assert.equal(await s.sign(f.msg_type, unb64(f.payload_b64)), f.envelope);
});

const headersV = vectors("headers");

test("signed headers: the canonical form and its hash match Python's (via Headers.get)", () => {
  for (const c of headersV.canonical) {
    const headers = new Headers(c.lines);
    const get = (name) => headers.get(name);
    assert.equal(b64(wire.canonicalHeaders(c.names, get)), c.canonical_b64, JSON.stringify(c.names));
    assert.equal(wire.headersHash(c.names, get), c.hash);
  }
});

test("signed headers: the same names are signable on both sides", () => {
  for (const [name, signable] of Object.entries(headersV.signable.request)) {
    assert.equal(wire.signableRequestHeader(name), signable, `request ${name}`);
  }
  for (const [name, signable] of Object.entries(headersV.signable.response)) {
    assert.equal(wire.signableResponseHeader(name), signable, `response ${name}`);
  }
  assert.deepEqual(wire.parseHeaderList("a,b-c, x-y"), ["a", "b-c", "x-y"]);
  assert.deepEqual(wire.parseHeaderList(""), []);
  for (const bad of ["a,a", "A", "a,,b", "a b", "é"]) assert.throws(() => wire.parseHeaderList(bad), TypeError, bad);
});

test("signed headers: a request signed with its headers is byte for byte Python's", () => {
  const c = headersV.request;
  const headers = new Headers(c.lines);
  const names = [...headers.keys()].filter(wire.signableRequestHeader);
  assert.equal(names.join(","), c.sig_headers);
  const hHeaders = wire.headersHash(names, (n) => headers.get(n));
  assert.equal(hHeaders, c.h_headers);
  const message = wire.requestMessage(c.ts, c.method, c.path_and_query, K.session_id, K.request_nonce, wire.bodyHash(unb64(c.body_b64)), hHeaders);
  assert.equal(new TextDecoder().decode(message), c.message);
  assert.equal(b64(ed25519.sign(message, clientSeed)), c.signature_b64);
});

test("signed headers: an answer's signed headers verify, added ones are not verified, altered ones refused", async () => {
  const c = headersV.response;
  const request = { sessionId: K.session_id, nonce: K.request_nonce, pathAndQuery: c.path_and_query };
  const body = wire.bodyHash(unb64(c.body_b64));
  const head = verify.parseHead(c.status, new Headers([...c.lines, ...c.added]), true);
  await verify.verifyHead(hostKey(), request, head, body);
  for (const name of c.verified) assert.ok(head.signedHeaders.has(name), name);
  for (const [name] of c.added) assert.equal(head.signedHeaders.has(name), false, name);
  for (const bad of c.bad) {
    await assert.rejects(
      (async () => verify.verifyHead(hostKey(), request, verify.parseHead(c.status, new Headers(bad.lines), true), body))(),
      sdk.SignatureInvalid,
      bad.name,
    );
  }
});
