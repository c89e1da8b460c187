// The SDK end to end from Node, against real processes started by
// tests/browser/test_sdk_e2e.py: the relay, the sample agent server and the host
// connector with signatures on. Pair with the code, signed requests, a verified
// streamed download and server-sent events, the WebSocket terminal, the retries (relay
// session gone, signing session gone, clock skew), a man in the middle (a real HTTP
// proxy on loopback, below) that changes one byte, and revocation.
// Node stand-ins for browser parts: fake-indexeddb for IndexedDB, `ws` for WebSocket.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import http from "node:http";
import net from "node:net";
import { test } from "node:test";
import { IDBFactory } from "fake-indexeddb";
import WebSocket from "ws";
import { SDK_PATH } from "../test/helpers.mjs";

const sdk = await import(SDK_PATH);
const env = (name) => {
  const value = process.env[name];
  assert.ok(value, `${name} is not set (run through tests/browser/test_sdk_e2e.py)`);
  return value;
};
const RELAY = env("AR_RELAY_URL");
const TOKEN = env("AR_TOKEN");
const HOST = env("AR_HOST_ID");
const CODE = env("AR_CODE");
const BLOB_SIZE = Number(env("AR_BLOB_SIZE"));
const BLOB_SHA256 = env("AR_BLOB_SHA256");

const factory = new IDBFactory();
const storage = new sdk.IndexedDbPairingStore(factory);
const makeClient = (extra = {}) =>
  new sdk.RelayClient({ relayUrl: RELAY, token: () => TOKEN, storage, WebSocket, ...extra });
const client = makeClient();
const sha256 = (bytes) => createHash("sha256").update(bytes).digest("hex");

async function readAll(stream) {
  const parts = [];
  for await (const part of stream) parts.push(Buffer.from(part));
  return Buffer.concat(parts);
}

function openSocket(c, path) {
  const ws = c.relayWebSocket(HOST, path);
  const inbox = [];
  const waiters = [];
  const closed = new Promise((resolve) => {
    ws.onclose = resolve;
  });
  ws.onmessage = (ev) => {
    inbox.push(ev.data);
    waiters.splice(0).forEach((w) => w());
  };
  const opened = new Promise((resolve, reject) => {
    ws.onopen = resolve;
    closed.then((ev) => reject(new Error(`closed before open: ${ev.code} ${ev.reason}`)));
  });
  const next = async () => {
    while (!inbox.length) await new Promise((r) => waiters.push(r));
    return inbox.shift();
  };
  return { ws, opened, closed, next };
}

test("the host is listed, online and not paired yet", async () => {
  const hosts = await client.listHosts();
  const host = hosts.find((h) => h.id === HOST);
  assert.ok(host, JSON.stringify(hosts));
  assert.equal(host.status, "online");
  assert.equal(host.paired, false);
  await assert.rejects(client.relayFetch(HOST, "/api/workspaces"), sdk.NotPaired);
});

test("pair with the code as typed (lower case, dashes), then it is paired", async () => {
  const pairing = await client.pair(HOST, ` ${CODE.slice(0, 3).toLowerCase()}-${CODE.slice(3)} `, { clientName: "node e2e", device: "test" });
  assert.equal(pairing.hostId, HOST);
  assert.equal(pairing.keyKind, "webcrypto");
  assert.equal((await client.listHosts()).find((h) => h.id === HOST).paired, true);
  assert.equal((await client.pairings()).length, 1);
  // The code is single use: a second pairing with it fails with the host's reason.
  await assert.rejects(makeClient({ storage: new sdk.IndexedDbPairingStore(new IDBFactory()) }).pair(HOST, CODE), (err) => err instanceof sdk.PairingFailed && err.reason === "code_expired");
});

test("signed GET and POST, answers verified", async () => {
  // pair() made one signed read (the reference way: the host may be a reference one);
  // its verified answer, which named the headers the host signed, taught that this host
  // checks signed headers: kept with the pairing, every later request signs its own.
  assert.equal((await storage.get(RELAY, HOST)).signsHeaders, true);
  const before = await client.relayFetch(HOST, "/api/workspaces");
  assert.equal(before.status, 200);
  assert.equal(before.verified, true);
  assert.ok(before.headers.has("x-vk-resp-signature"));
  // Signed headers: the host signs the answer's content-type; the relay's own are not.
  assert.match(before.headers.get("content-type"), /json/);
  assert.equal(before.unverifiedHeaders.has("content-type"), false);
  assert.equal(before.headers.has("x-content-type-options"), false, "the relay's header is not the host's");
  assert.equal(before.unverifiedHeaders.get("x-content-type-options"), "nosniff");
  const created = await client.relayFetch(HOST, "/api/workspaces", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ name: "from node é" }),
  });
  assert.equal(created.status, 201);
  assert.equal((await created.json()).name, "from node é");
  const list = await client.relayFetch(HOST, "/api/workspaces?x=a%20b&y=é");
  assert.ok((await list.json()).workspaces.some((w) => w.name === "from node é"));
  const missing = await client.relayFetch(HOST, "/api/workspaces/nope/repos");
  assert.equal(missing.status, 404); // a verified 404 is an answer, not an error
});

test("a streamed download is verified record by record", async () => {
  const response = await client.relayFetch(HOST, `/api/blob?size=${BLOB_SIZE}`);
  assert.equal(response.streamed, true);
  const body = await readAll(response.body);
  assert.equal(body.length, BLOB_SIZE);
  assert.equal(sha256(body), BLOB_SHA256);
});

test("server-sent events arrive verified as they happen", async () => {
  const response = await client.relayFetch(HOST, "/api/events");
  assert.equal(response.streamed, true);
  const reader = response.body.getReader();
  let text = "";
  while (!(text.includes("event: hello") && text.includes("event: tick"))) {
    const { value, done } = await reader.read();
    assert.equal(done, false);
    text += new TextDecoder().decode(value);
  }
  await reader.cancel();
});

test("a stream outlives the head timeout; a relay that never answers is a Timeout", async () => {
  const quick = makeClient({ timeoutMs: 400 });
  const response = await quick.relayFetch(HOST, "/api/events");
  const reader = response.body.getReader();
  const began = Date.now();
  let ticks = 0;
  while (Date.now() - began < 1200) {
    const { value, done } = await reader.read();
    assert.equal(done, false);
    ticks += (new TextDecoder().decode(value).match(/event: tick/g) ?? []).length;
  }
  await reader.cancel();
  assert.ok(ticks >= 2, `${ticks} ticks`);
  const silent = http.createServer(() => undefined); // accepts, never answers
  await new Promise((resolve) => silent.listen(0, "127.0.0.1", resolve));
  try {
    const stuck = new sdk.RelayClient({ relayUrl: `http://127.0.0.1:${silent.address().port}`, token: () => TOKEN, storage, timeoutMs: 300 });
    await assert.rejects(stuck.listHosts(), sdk.Timeout);
  } finally {
    silent.closeAllConnections();
    silent.close();
  }
});

test("the WebSocket terminal echoes, every frame signed both ways", async () => {
  const { ws, opened, closed, next } = openSocket(client, "/api/terminal?cols=80&rows=24");
  await opened;
  assert.equal(ws.readyState, 1);
  assert.match(await next(), /sample terminal/);
  ws.send("hello");
  assert.equal(await next(), "hello\r\n$ ");
  ws.send(new Uint8Array([0, 1, 255]));
  assert.deepEqual([...(await next())], [0, 1, 255]);
  ws.close(1000, "done");
  const ev = await closed;
  assert.equal(ev.code, 1000);
});

test("a relay session that is gone is re-created and the same signed request resent", async () => {
  const record = await storage.get(RELAY, HOST);
  record.relaySessionId = crypto.randomUUID();
  await storage.put(record);
  const fresh = makeClient();
  const response = await fresh.relayFetch(HOST, "/api/whoami");
  assert.deepEqual(await response.json(), { relayed: true, path: "/api/whoami" });
  assert.equal(fresh.stats.relaySessionCreations, 1);
  assert.equal(fresh.stats.refreshes, 0);
});

test("a signing session the host does not know is refreshed once", async () => {
  const record = await storage.get(RELAY, HOST);
  record.signingSessionId = crypto.randomUUID();
  await storage.put(record);
  const fresh = makeClient();
  assert.equal((await fresh.relayFetch(HOST, "/api/whoami")).status, 200);
  assert.equal(fresh.stats.refreshes, 1);
  assert.notEqual((await storage.get(RELAY, HOST)).signingSessionId, record.signingSessionId);
});

test("a clock 60 s off stays refused: an unsigned 401 may move it by 30 s at most", async () => {
  // The host's clock_skew 401 is unsigned (the relay could forge one), so, as in the
  // Python client, it may correct the clock by no more than the host's window.
  const skewed = makeClient({ now: () => Date.now() + 60_000 });
  await assert.rejects(skewed.relayFetch(HOST, "/api/whoami"), (err) => err instanceof sdk.RelayRefused && err.reason === "clock_skew");
  const offset = (await storage.get(RELAY, HOST)).clockOffset;
  assert.ok(Math.abs(offset) < 3, `offset ${offset}: the forgeable correction was taken`);
});

// A man in the middle: a real HTTP proxy on loopback in front of the relay that, when
// armed for a path, changes one byte of the answer's body at `at`.
async function mitm() {
  const state = { path: null, at: 0, hits: 0 };
  const target = new URL(RELAY);
  const server = http.createServer((req, res) => {
    const upstream = http.request(
      { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers },
      (answer) => {
        res.writeHead(answer.statusCode, answer.headers);
        const armed = state.path !== null && req.url.includes(state.path);
        let seen = 0;
        answer.on("data", (chunk) => {
          if (armed && seen <= state.at && state.at < seen + chunk.length) {
            chunk = Buffer.from(chunk);
            chunk[state.at - seen] ^= 0x20;
            state.hits += 1;
          }
          seen += chunk.length;
          res.write(chunk);
        });
        answer.on("end", () => res.end());
      },
    );
    req.pipe(upstream);
    upstream.on("error", () => res.destroy());
  });
  // WebSocket upgrades: raw bytes both ways; when `state.wsArmed`, the next chunk from
  // the relay (a frame, on loopback one chunk) gets one byte changed near its end,
  // inside the envelope's signature.
  server.on("upgrade", (req, client, head) => {
    const upstream = net.connect(Number(target.port), target.hostname, () => {
      const lines = [`${req.method} ${req.url} HTTP/1.1`];
      for (let i = 0; i < req.rawHeaders.length; i += 2) lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
      upstream.write(lines.join("\r\n") + "\r\n\r\n");
      upstream.write(head);
      client.pipe(upstream);
    });
    upstream.on("data", (chunk) => {
      if (state.wsArmed && !chunk.includes("HTTP/1.1 101")) {
        state.wsArmed = false;
        chunk = Buffer.from(chunk);
        chunk[chunk.length - 6] ^= 0x01;
        state.hits += 1;
      }
      client.write(chunk);
    });
    upstream.on("end", () => client.end());
    upstream.on("error", () => client.destroy());
    client.on("error", () => upstream.destroy());
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { state, url: `http://127.0.0.1:${server.address().port}`, close: () => { server.closeAllConnections(); server.close(); } };
}

test("a byte changed in an answer: SignatureInvalid and no data", async () => {
  const proxy = await mitm();
  try {
    const record = await storage.get(RELAY, HOST);
    // The same pairing, reached through the proxy (pairings are per relay URL).
    await storage.put({ ...record, relayUrl: proxy.url, relaySessionId: null });
    const through = new sdk.RelayClient({ relayUrl: proxy.url, token: () => TOKEN, storage, WebSocket });
    assert.equal((await through.relayFetch(HOST, "/api/whoami")).status, 200); // faithful so far

    proxy.state.path = "/api/workspaces";
    proxy.state.at = 5;
    await assert.rejects(through.relayFetch(HOST, "/api/workspaces"), sdk.SignatureInvalid);
    assert.equal(proxy.state.hits, 1);

    // A streamed download altered in its 10th record: the records before it come out
    // (each verified), then the stream errors; not one altered byte is handed out.
    const recordSize = 4 + 65536 + 64;
    proxy.state.path = "/api/blob";
    proxy.state.at = 9 * recordSize + 4 + 100;
    const response = await through.relayFetch(HOST, `/api/blob?size=${BLOB_SIZE}`);
    const got = [];
    await assert.rejects(
      (async () => {
        for await (const part of response.body) got.push(Buffer.from(part));
      })(),
      sdk.SignatureInvalid,
    );
    const prefix = Buffer.concat(got);
    assert.ok(prefix.length <= 9 * 65536, `${prefix.length} bytes came out`);
    const good = await readAll((await client.relayFetch(HOST, `/api/blob?size=${BLOB_SIZE}`)).body);
    assert.ok(prefix.equals(good.subarray(0, prefix.length)), "only authentic bytes came out");

    // A WebSocket frame altered on the way: onerror(SignatureInvalid), closed with
    // 1008 and the reason, and the altered message is never delivered.
    proxy.state.hits = 0;
    const { ws, opened, closed, next } = openSocket(through, "/api/terminal");
    const errors = [];
    ws.onerror = (err) => errors.push(err);
    await opened;
    assert.match(await next(), /sample terminal/);
    const delivered = [];
    ws.onmessage = (ev) => delivered.push(ev.data);
    proxy.state.wsArmed = true;
    ws.send("hello");
    const ev = await closed;
    assert.equal(proxy.state.hits, 1);
    assert.equal(ev.code, 1008);
    assert.match(ev.reason, /does not verify|malformed|not a signed envelope/);
    assert.ok(errors[0] instanceof sdk.SignatureInvalid, String(errors[0]));
    assert.deepEqual(delivered, []);
    await storage.delete(proxy.url, HOST);
  } finally {
    proxy.close();
  }
});

test("revocation: the open WebSocket closes with a reason to show, then 'pair again'", async () => {
  const { opened, closed, next } = openSocket(client, "/api/terminal");
  await opened;
  await next();
  const { clientId } = (await client.pairings())[0];
  const kept = await storage.get(RELAY, HOST);
  // The client revokes itself through the host's signed route (as the host owner would
  // from the local page).
  const revoked = await client.relayFetch(HOST, `/api/relay-auth/server/clients/${clientId}`, { method: "DELETE" });
  assert.equal(revoked.status, 200);
  const ev = await closed;
  assert.equal(ev.reason, sdk.REVOKED_REASON);
  await assert.rejects(client.relayFetch(HOST, "/api/whoami"), sdk.NotPaired);
  assert.deepEqual(await client.pairings(), []);
  assert.equal((await client.listHosts()).find((h) => h.id === HOST).paired, false);
  // A copy of the pairing kept elsewhere (another tab that wrote it back): the host
  // refuses it, the SDK says PairingRevoked and drops it again.
  await storage.put(kept);
  await assert.rejects(makeClient().relayFetch(HOST, "/api/whoami"), sdk.PairingRevoked);
  assert.equal(await storage.get(RELAY, HOST), undefined);
});
