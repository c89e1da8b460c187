// The SDK's own pieces: code input, path canonicalisation, keys, the pairing store.
// IndexedDB under Node is fake-indexeddb (pinned in package.json), the stand-in for the
// browser's: the real IndexedDB is covered by the Chromium tests of the web pages.
import assert from "node:assert/strict";
import { test } from "node:test";
import { IDBFactory } from "fake-indexeddb";
import { ed25519 } from "@noble/curves/ed25519.js";
import { sdk, utf8 } from "./helpers.mjs";

const { wire, keys } = sdk.protocol;

test("normalizeCode: trims, uppercases, drops spaces and dashes", () => {
  assert.equal(sdk.normalizeCode("  ab12-cd "), "AB12CD");
  assert.equal(sdk.normalizeCode("k7 qx 2m"), "K7QX2M");
  assert.equal(sdk.normalizeCode("a-b-c\t1-2-3"), "ABC123");
  assert.equal(sdk.normalizeCode(""), "");
});

test("canonicalPath: what fetch will send, so what we sign", () => {
  const cases = [
    ["/api/workspaces", "/api/workspaces"],
    ["/api/x?b=2&a=1", "/api/x?b=2&a=1"],
    ["/a b", "/a%20b"],
    ["/a/./b/../c", "/a/c"],
    ["/été?q=é", "/%C3%A9t%C3%A9?q=%C3%A9"],
    ["//double", "//double"],
    ["/q?", "/q"],
  ];
  for (const [input, expected] of cases) {
    assert.equal(wire.canonicalPath(input), expected, input);
    // Idempotent: the relay URL fetch parses again yields the same path.
    const again = new URL(`http://relay.invalid/v1/relay/h/x/s/y${expected}`);
    assert.equal(again.pathname.slice("/v1/relay/h/x/s/y".length) + again.search, expected, input);
  }
  for (const bad of ["api", "", "/a#frag", "http://evil/", "/" + "a".repeat(8000)]) {
    assert.throws(() => wire.canonicalPath(bad), TypeError, bad);
  }
});

test("normalizeRelayUrl: as the Python key store compares it", () => {
  assert.equal(sdk.normalizeRelayUrl("HTTP://Relay.Example:8080/"), "http://relay.example:8080");
  assert.equal(sdk.normalizeRelayUrl("https://r.example/prefix/"), "https://r.example/prefix");
  assert.throws(() => sdk.normalizeRelayUrl("ftp://r.example"));
  assert.throws(() => sdk.normalizeRelayUrl("https://r.example/?a=1"));
});

test("keySupport: Node's WebCrypto has Ed25519", async () => {
  assert.equal(await sdk.keySupport(), "webcrypto");
});

test("WebCrypto client keys are non-extractable and sign verifiably", async () => {
  const key = await keys.generateClientKey("webcrypto");
  assert.equal(key.kind, "webcrypto");
  assert.equal(key.privateKey.extractable, false);
  await assert.rejects(crypto.subtle.exportKey("pkcs8", key.privateKey));
  await assert.rejects(crypto.subtle.exportKey("jwk", key.privateKey));
  const signature = await keys.sign(key.privateKey, utf8("v1|message"));
  assert.ok(ed25519.verify(signature, utf8("v1|message"), key.publicKeyRaw));
});

test("the noble fallback makes keys that sign verifiably", async () => {
  const key = await keys.generateClientKey("noble");
  assert.equal(key.kind, "noble");
  assert.ok(key.privateKey instanceof Uint8Array);
  const signature = await keys.sign(key.privateKey, utf8("v1|message"));
  assert.ok(await new keys.HostKey(key.publicKeyRaw).verify(signature, utf8("v1|message")));
  assert.equal(await new keys.HostKey(key.publicKeyRaw).verify(signature, utf8("v1|messagf")), false);
});

function record(hostId, privateKey, publicKeyRaw, relayUrl = "http://relay.test") {
  return {
    hostId,
    relayUrl,
    clientId: crypto.randomUUID(),
    clientName: "test",
    hostPublicKeyB64: btoa(String.fromCharCode(...new Uint8Array(32).fill(7))),
    signingSessionId: crypto.randomUUID(),
    keyKind: "webcrypto",
    pairedAt: new Date(0).toISOString(),
    privateKey,
    publicKeyRaw,
    sessionStartedAt: 0,
    sessionUsedAt: 0,
    relaySessionId: null,
    clockOffset: 0,
  };
}

test("IndexedDB store keeps the CryptoKey itself, still non-extractable and usable", async () => {
  const factory = new IDBFactory();
  const key = await keys.generateClientKey("webcrypto");
  const hostId = crypto.randomUUID();
  const store = new sdk.IndexedDbPairingStore(factory);
  await store.put(record(hostId, key.privateKey, key.publicKeyRaw));
  await store.put(record(crypto.randomUUID(), key.privateKey, key.publicKeyRaw, "http://other.test"));
  // A second store on the same database: what a page reload sees.
  const reloaded = new sdk.IndexedDbPairingStore(factory);
  const back = await reloaded.get("http://relay.test", hostId);
  assert.ok(back.privateKey instanceof CryptoKey);
  assert.equal(back.privateKey.extractable, false);
  const signature = await keys.sign(back.privateKey, utf8("after reload"));
  assert.ok(ed25519.verify(signature, utf8("after reload"), key.publicKeyRaw));
  assert.equal((await reloaded.list("http://relay.test")).length, 1);
  await reloaded.delete("http://relay.test", hostId);
  assert.equal(await reloaded.get("http://relay.test", hostId), undefined);
  assert.equal((await reloaded.list("http://other.test")).length, 1);
});

test("no pairing (or a cleared database): NotPaired, and nothing is sent", async () => {
  const client = new sdk.RelayClient({
    relayUrl: "http://relay.test",
    token: () => "t",
    storage: new sdk.IndexedDbPairingStore(new IDBFactory()),
    fetch: () => assert.fail("nothing may be sent without a pairing"),
  });
  const host = crypto.randomUUID();
  await assert.rejects(client.relayFetch(host, "/api/x"), sdk.NotPaired);
  assert.deepEqual(await client.pairings(), []);
  const closed = await new Promise((resolve) => {
    const ws = client.relayWebSocket(host, "/api/terminal");
    ws.onclose = resolve;
  });
  assert.equal(closed.code, 1008);
  // PairingRevoked is the same "pair again" state.
  assert.ok(new sdk.PairingRevoked("x") instanceof sdk.NotPaired);
});

test("a bad code is refused before anything is sent", async () => {
  const client = new sdk.RelayClient({
    relayUrl: "http://relay.test",
    token: () => "t",
    storage: new sdk.IndexedDbPairingStore(new IDBFactory()),
    fetch: () => assert.fail("a malformed code must not start a pairing"),
  });
  for (const code of ["ABC", "ABCDEFG", "AB!2CD", "ÀB12CD"]) {
    await assert.rejects(client.pair(crypto.randomUUID(), code), (err) => err instanceof sdk.PairingFailed && err.reason === "bad_input");
  }
});
