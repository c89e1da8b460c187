// Issue 11 item 10, the browser SDK's side: an unsigned 401 (which the relay can forge)
// may move the SDK's estimate of the host clock by at most the host's window (30 s).
// Run by tests/security/test_browser_clock.py (not a *.test.mjs: that test counts it).
import assert from "node:assert/strict";
import { test } from "node:test";
import { IDBFactory } from "fake-indexeddb";
import { sdk } from "./helpers.mjs";

const { keys } = sdk.protocol;
const NOW = 1_767_225_600_000;

async function refreshTimestampAfter(hostTimeOffset) {
  const key = await keys.generateClientKey("webcrypto");
  const hostId = crypto.randomUUID();
  const storage = new sdk.IndexedDbPairingStore(new IDBFactory());
  await storage.put({
    hostId,
    relayUrl: "http://relay.test",
    clientId: crypto.randomUUID(),
    clientName: "test",
    hostPublicKeyB64: btoa(String.fromCharCode(...new Uint8Array(32).fill(7))),
    signingSessionId: crypto.randomUUID(),
    keyKind: "webcrypto",
    pairedAt: new Date(NOW).toISOString(),
    privateKey: key.privateKey,
    publicKeyRaw: key.publicKeyRaw,
    sessionStartedAt: NOW,
    sessionUsedAt: NOW,
    relaySessionId: crypto.randomUUID(),
    clockOffset: 0,
  });
  let refreshed = null;
  const fetch = async (url, init) => {
    if (String(url).endsWith("/signing-session/refresh")) {
      refreshed = JSON.parse(init.body);
      throw new TypeError("stop here");
    }
    // The relay's forgery: a host-looking 401 with no host signature, clock far ahead.
    const body = JSON.stringify({ success: false, reason: "clock_skew", message: "skew", error: "skew" });
    return new Response(body, {
      status: 401,
      headers: { "content-type": "application/json", "x-vk-host-time": String(NOW / 1000 + hostTimeOffset) },
    });
  };
  const client = new sdk.RelayClient({ relayUrl: "http://relay.test", token: () => "t", storage, fetch, now: () => NOW });
  await assert.rejects(client.relayFetch(hostId, "/api/x"));
  assert.ok(refreshed, "the SDK asked for a new signing session");
  return Number(refreshed.timestamp) - NOW / 1000;
}

test("an unsigned 401 cannot move the SDK's clock by more than 30 s", async () => {
  assert.equal(await refreshTimestampAfter(89), 0); // the attack: ignored
  assert.equal(await refreshTimestampAfter(45), 0);
  assert.equal(await refreshTimestampAfter(25), 25); // within the window: adopted
});
