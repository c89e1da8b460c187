// The WebRTC upgrade in headless Chromium, run by test_webrtc_chromium.py (addresses as
// JSON in argv[2]; the summary is the last line printed). The remote UI upgrades after
// its first verified relayed call (the path badge says so), its live events and terminal
// then go over the channel; the host drops the channel and everything carries on through
// the relay. Then the SDK itself in the page (the bundle the relay serves), and a
// hostile relay that swaps the DTLS fingerprint in the signed answer.
import { createRequire } from "node:module";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

const cfg = JSON.parse(process.argv[2]);
const require = createRequire(join(cfg.clientsDir, "package.json"));
const { chromium } = require("playwright-core");
const axeSource = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");

const summary = { screens: [], axe: {}, steps: 0 };
mkdirSync(cfg.outDir, { recursive: true });

function check(ok, message) {
  if (!ok) throw new Error(`check failed: ${message}`);
  summary.steps++;
}

const door = async (path, method = "GET") => (await fetch(cfg.door + path, { method })).json();

async function shoot(page, name) {
  await page.waitForTimeout(150);
  const file = join(cfg.outDir, `webrtc-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  summary.screens.push(file);
  await page.evaluate(axeSource);
  // eslint-disable-next-line no-undef
  const result = await page.evaluate(() => axe.run(document, { resultTypes: ["violations"] }));
  const bad = result.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  summary.axe[name] = bad.map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`);
}

async function pair(page, base) {
  await page.goto(`${base}/#token=${encodeURIComponent(cfg.token)}`);
  await page.waitForSelector(`li.host[data-host="${cfg.hostId}"]`);
  const { code } = await door("/code", "POST");
  await page.goto(`${base}/#pair=${cfg.hostId}&code=${code}`);
  await page.waitForSelector("#pair-submit");
  await page.fill("#client-name", `WebRTC test ${base.slice(-5)}`);
  await page.click("#pair-submit");
  await page.waitForSelector("[data-workspace]");
}

const badge = (page) => page.getAttribute("#path-badge", "data-path");
const label = (page) => page.textContent("#path-label");
const waitPath = (page, path, timeout = 30000) => page.waitForSelector(`#path-badge[data-path="${path}"]`, { timeout });
const eventCount = (page) => page.$$eval("#events li", (l) => l.length);

async function moreEvents(page) {
  const before = await eventCount(page);
  await page.waitForFunction((n) => document.querySelectorAll("#events li").length > n, before, { timeout: 10000 });
}

async function terminalEcho(page, text) {
  await page.waitForFunction(() => document.getElementById("terminal")?.textContent.endsWith("$ "), null, { timeout: 10000 });
  await page.fill("#terminal-input", text);
  await page.press("#terminal-input", "Enter");
  await page.waitForFunction((t) => document.getElementById("terminal").textContent.includes(`${t}\r\n$ `), text, { timeout: 10000 });
}

async function reopenHost(page) {
  await page.evaluate(() => (location.hash = "#/hosts"));
  await page.waitForSelector("li.host");
  // The hosts list says which path this page's calls to the host take.
  await page.waitForSelector(`li.host[data-host="${cfg.hostId}"] .badge[data-path="direct"]`, { timeout: 5000 });
  await page.evaluate((id) => (location.hash = `#/host/${id}`), cfg.hostId);
  await page.waitForSelector("[data-workspace]");
}

async function theUi(browser) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (err) => errors.push(String(err)));
  await pair(page, cfg.relay);
  check((await label(page)) === "via relay" || (await badge(page)) === "direct", "the badge starts on the relay");
  await waitPath(page, "direct");
  check((await label(page)) === "direct (WebRTC)", `the badge says direct (${await label(page)})`);
  await shoot(page, "1-direct");

  // Opened again on the open channel: the workspaces, the live events (streamed bodies)
  // and the terminal (a WebSocket) now go over it; the host's counters say so.
  const before = await door("/stats");
  await reopenHost(page);
  await moreEvents(page);
  await terminalEcho(page, "over webrtc");
  const after = await door("/stats");
  check(after.http_served > before.http_served, `HTTP over the channel (${before.http_served} → ${after.http_served})`);
  check(after.body_messages > before.body_messages, `SSE over the channel (${before.body_messages} → ${after.body_messages})`);
  check(after.ws_opened > before.ws_opened && after.ws_frames > before.ws_frames, "the terminal over the channel");
  check((await badge(page)) === "direct", "still direct");
  await shoot(page, "2-direct-stream");

  // The host drops every channel: the badge goes back to the relay, and the events, the
  // terminal and a request from the console all carry on (through the relay).
  await door("/drop", "POST");
  await waitPath(page, "relayed", 10000);
  summary.droppedLabel = await label(page);
  await moreEvents(page);
  await terminalEcho(page, "after the drop");
  await page.click("details.console summary");
  await page.selectOption("#rc-method", "POST");
  await page.fill("#rc-path", "/echo");
  await page.fill("#rc-body", "after the drop");
  await page.click("details.console button[type=submit]");
  await page.waitForFunction(() => document.getElementById("rc-result").textContent.includes("Status 200"), null, { timeout: 15000 });
  check((await page.textContent("#rc-result")).includes("after the drop"), "the console's call went through");
  // A channel that worked and dropped is negotiated again at once.
  await waitPath(page, "direct");
  summary.reupgraded = true;

  // "Use the relay only": the channel is closed and not tried again.
  await page.check("#relay-only");
  await waitPath(page, "relayed", 5000);
  await shoot(page, "3-relay-only");
  check(errors.length === 0, `no page errors: ${errors.join(" | ")}`);
  return { context, page };
}

// The SDK in the page (the bundle at /ui/sdk.js, the pairing the UI stored).
async function theSdk(page) {
  await door("/drop", "POST"); // the UI's peers gone: this client gets its own
  const out = await page.evaluate(async (hostId) => {
    const sdk = await import("/ui/sdk.js");
    const c = new sdk.RelayClient({ relayUrl: location.origin, token: () => localStorage.getItem("agent-relay.token") });
    const r = {};
    const first = await c.relayFetch(hostId, "/echo", { method: "POST", body: "one" });
    r.first = [first.via, first.status, await first.text()];
    r.upgraded = await c.upgrade(hostId);
    r.lastError = c.hostPath(hostId).lastError;
    r.certificateChecked = c.hostPath(hostId).certificateChecked;
    const second = await c.relayFetch(hostId, "/echo", { method: "POST", body: "two" });
    r.second = [second.via, second.verified, await second.text()];
    const events = await c.relayFetch(hostId, "/api/events");
    const reader = events.body.getReader();
    let text = "";
    while ((text.match(/data:/g) ?? []).length < 2) {
      const { value, done } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    await reader.cancel();
    r.events = { via: events.via, streamed: events.streamed, text };
    // The caller's signal ends a stream over the channel too (not only its head).
    const stop = new AbortController();
    const aborted = await c.relayFetch(hostId, "/api/events", { signal: stop.signal });
    const abortedReader = aborted.body.getReader();
    await abortedReader.read();
    stop.abort();
    r.abortedStream = await abortedReader.read().then(
      (next) => (next.done ? "ended" : "went on"),
      (err) => `errored: ${err.name}`,
    );
    r.abortedVia = aborted.via;
    r.ws = await new Promise((resolve, reject) => {
      const ws = c.relayWebSocket(hostId, "/api/terminal");
      let got = "";
      const timer = setTimeout(() => reject(new Error("no echo in time")), 15000);
      ws.onmessage = (ev) => {
        got += ev.data;
        if (got === "$ ") ws.send("hello");
        if (got.includes("hello\r\n")) {
          clearTimeout(timer);
          ws.onclose = null;
          ws.close();
          resolve({ path: ws.path, got });
        }
      };
      ws.onclose = (ev) => reject(new Error(`closed ${ev.code} ${ev.reason}`));
    });
    // Kill the channel: the next call goes through the relay, and succeeds.
    c.closeChannel(hostId);
    const third = await c.relayFetch(hostId, "/echo", { method: "POST", body: "three" });
    r.third = [third.via, third.status, await third.text()];
    r.stats = { ...c.stats };
    // No answer over the channel in time: the same signed call through the relay, which
    // the host refuses as a replay: "may have run", never run twice.
    const impatient = new sdk.RelayClient({
      relayUrl: location.origin,
      token: () => localStorage.getItem("agent-relay.token"),
      webrtc: { answerTimeoutMs: 500 },
    });
    await impatient.relayFetch(hostId, "/echo");
    r.impatientUpgraded = await impatient.upgrade(hostId);
    try {
      await impatient.relayFetch(hostId, "/slow", { method: "POST", body: "once" });
      r.slow = "answered";
    } catch (err) {
      r.slow = `${err.name}: ${err.message}`;
    }
    r.slowPath = impatient.hostPath(hostId).path;
    return r;
  }, cfg.hostId);
  summary.sdk = out;
  check(out.first[0] === "relayed" && out.first[1] === 200, `the first call is relayed (${out.first})`);
  check(out.upgraded === true, `the SDK upgraded (${out.lastError})`);
  check(out.certificateChecked === true, "the DTLS certificate was compared with the signed answer");
  check(out.second[0] === "direct" && out.second[1] === true && out.second[2].includes('"two"'), `a verified call over the channel (${out.second})`);
  check(out.events.via === "direct" && out.events.streamed && /data: tick/.test(out.events.text), `SSE over the channel (${JSON.stringify(out.events)})`);
  check(out.abortedVia === "direct" && /^errored/.test(out.abortedStream), `an aborted stream over the channel stops (${out.abortedStream})`);
  check(out.ws.path === "direct" && out.ws.got.includes("hello"), `a WebSocket over the channel (${JSON.stringify(out.ws)})`);
  check(out.third[0] === "relayed" && out.third[1] === 200 && out.third[2].includes('"three"'), `after the kill, through the relay (${out.third})`);
  check(out.impatientUpgraded === true, "the impatient client upgraded");
  check(/^MayHaveRun/.test(out.slow), `a call with no answer in time is reported "may have run" (${out.slow})`);
  check(out.slowPath === "relayed", "the channel that timed out is dropped");
  await new Promise((r) => setTimeout(r, 2500)); // the slow call finishes on the host
  const stats = await door("/stats");
  check(stats.slow_runs === 1, `the slow call ran exactly once (${stats.slow_runs})`);
}

// A hostile relay swaps the host's DTLS fingerprint in the signed answer: refused (the
// signature no longer verifies), and everything stays on the relay.
async function hostile(browser) {
  const context = await browser.newContext({ viewport: { width: 390, height: 844 } });
  const page = await context.newPage();
  const before = await door("/stats");
  await pair(page, cfg.hostile);
  await page.waitForSelector('#path-badge[title*="WebRTC"]', { timeout: 30000 });
  check((await badge(page)) === "relayed", "the UI stays on the relay");
  const title = await page.getAttribute("#path-badge", "title");
  check(/signature/i.test(title), `the badge says why (${title})`);
  await shoot(page, "4-hostile-relayed");
  const out = await page.evaluate(async (hostId) => {
    const sdk = await import("/ui/sdk.js");
    const c = new sdk.RelayClient({ relayUrl: location.origin, token: () => localStorage.getItem("agent-relay.token") });
    const first = await c.relayFetch(hostId, "/echo", { method: "POST", body: "a" });
    const upgraded = await c.upgrade(hostId);
    const after = await c.relayFetch(hostId, "/echo", { method: "POST", body: "b" });
    return { first: first.via, upgraded, error: c.hostPath(hostId).lastError, after: [after.via, after.status, await after.text()] };
  }, cfg.hostId);
  const after = await door("/stats");
  summary.hostile = { ...out, offers: after.offers - before.offers, channelsOpened: after.channels_opened - before.channels_opened };
  check(out.upgraded === false && /SignatureInvalid/.test(out.error), `the swapped answer is refused (${out.error})`);
  check(out.after[0] === "relayed" && out.after[1] === 200 && out.after[2].includes('"b"'), "calls carry on through the relay");
  check(summary.hostile.offers >= 2 && summary.hostile.channelsOpened === 0, JSON.stringify(summary.hostile));
  await context.close();
}

// A client of its own (paired by the SDK in a fresh context) for the extensions and the
// host's refusals: a streamed upload over the channel, cancel both ways, the pairing-code
// route refused over the channel, and last the client revoked on the host.
async function channelExtras(browser) {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(cfg.relay + "/");
  const { code } = await door("/code", "POST");
  const out = await page.evaluate(
    async ({ cfg, code }) => {
      const sdk = await import("/ui/sdk.js");
      const c = new sdk.RelayClient({ relayUrl: location.origin, token: () => cfg.token });
      window.__c = c;
      const paired = await c.pair(cfg.hostId, code, { clientName: "extensions test", device: "chromium" });
      const r = { clientId: paired.clientId };
      await c.relayFetch(cfg.hostId, "/echo");
      r.upgraded = await c.upgrade(cfg.hostId);
      r.lastError = c.hostPath(cfg.hostId).lastError;
      const channel = c.peers.get(cfg.hostId).channel;
      await channel.offers("upload"); // the host's hello, in answer to the SDK's
      r.hostExtensions = [...channel.hostExtensions].sort();
      return r;
    },
    { cfg, code },
  );
  const before = await door("/stats"); // the pairing's code is used up: none current
  Object.assign(
    out,
    await page.evaluate(async (cfg) => {
      const c = window.__c;
      const r = {};
      // A 3 MiB upload (over the 1 MiB message limit): streamed, paced by the host's credit.
      const big = new Uint8Array(3 * 1024 * 1024);
      for (let i = 0; i < big.length; i++) big[i] = (i * 7) & 255;
      const hex = (buf) => Array.from(new Uint8Array(buf), (b) => b.toString(16).padStart(2, "0")).join("");
      const up = await c.relayFetch(cfg.hostId, "/upload", { method: "POST", body: big });
      r.upload = { via: up.via, status: up.status, verified: up.verified, body: await up.json(), sha256: hex(await crypto.subtle.digest("SHA-256", big)) };
      // The page stops reading an event stream: the host is told and stops its request.
      const events = await c.relayFetch(cfg.hostId, "/api/events");
      const reader = events.body.getReader();
      await reader.read();
      await reader.cancel();
      r.eventsVia = events.via;
      // The local server fails mid-body: the host cancels toward the page.
      const broken = await c.relayFetch(cfg.hostId, "/broken");
      r.brokenVia = broken.via;
      r.broken = await broken.text().then(
        (text) => `read: ${text}`,
        (err) => `errored: ${err.name}: ${err.message}`,
      );
      // The pairing-code route, well signed, sent over the channel by hand (the SDK itself
      // never routes it there): the host refuses it.
      const record = await c.load(cfg.hostId);
      const path = "/api/relay-auth/server/enrollment-code";
      const signed = await c.signRequest(record, "POST", path, new Uint8Array(0));
      const headers = {
        "x-vk-sig-session": [signed.sessionId],
        "x-vk-sig-ts": [String(signed.ts)],
        "x-vk-sig-nonce": [signed.nonce],
        "x-vk-sig-signature": [signed.signatureB64],
      };
      const channel = c.peers.get(cfg.hostId).channel;
      const refused = await channel.fetch({ method: "POST", path: signed.pathAndQuery, headers, body: new Uint8Array(0) }, 10000, null);
      r.pairingRoute = { status: refused.status, body: await refused.json(), signed: refused.headers.has("x-vk-resp-signature") };
      r.pathAfterRefusal = c.hostPath(cfg.hostId).path;
      // For the revocation: when the path goes back to the relay.
      window.__relayedAt = null;
      c.onPathChange((id, p) => {
        if (p.path === "relayed" && window.__relayedAt === null) window.__relayedAt = Date.now();
      });
      r.directCalls = c.stats.directCalls;
      return r;
    }, cfg),
  );
  const mid = await door("/stats");
  summary.extras = out;
  check(out.upgraded === true, `the SDK upgraded (${out.lastError})`);
  check(["cancel", "stream", "upload"].every((e) => out.hostExtensions.includes(e)), `the host's hello (${out.hostExtensions})`);
  check(out.upload.via === "direct" && out.upload.status === 200 && out.upload.verified, `a 3 MiB upload over the channel (${JSON.stringify(out.upload)})`);
  check(out.upload.body.size === 3 * 1024 * 1024 && out.upload.body.sha256 === out.upload.sha256, "the local server got the body whole");
  check(mid.uploads === before.uploads + 1 && mid.upload_bytes - before.upload_bytes === 3 * 1024 * 1024, `the host streamed it (${mid.uploads}, ${mid.upload_bytes})`);
  check(out.eventsVia === "direct" && mid.cancelled_by_client > before.cancelled_by_client, `a closed event stream is cancelled on the host (${mid.cancelled_by_client})`);
  check(out.brokenVia === "direct" && /host cancelled/.test(out.broken) && mid.cancelled_by_host > before.cancelled_by_host, `the host cancels a body its server broke off (${out.broken})`);
  check(out.pairingRoute.status === 403 && out.pairingRoute.body.reason === "not_over_channel" && !out.pairingRoute.signed, `the pairing-code route is refused over the channel (${JSON.stringify(out.pairingRoute)})`);
  check(mid.current_code === before.current_code, "no enrollment code was issued");
  check(out.pathAfterRefusal === "direct", "a refusal leaves the channel open");

  // Revoked on the host: its channel closes within a second, later calls go through the
  // relay and fail as revoked.
  const revokedAt = Date.now();
  await door(`/revoke?client=${out.clientId}`, "POST");
  await page.waitForFunction(() => window.__relayedAt !== null, null, { timeout: 5000 });
  const closedAfter = (await page.evaluate(() => window.__relayedAt)) - revokedAt;
  summary.extras.closedAfterMs = closedAfter;
  check(closedAfter < 1000, `the revoked client's channel closed within 1 s (${closedAfter} ms)`);
  const later = await page.evaluate(async (hostId) => {
    const c = window.__c;
    const r = { path: c.hostPath(hostId).path };
    try {
      const a = await c.relayFetch(hostId, "/echo");
      r.call = `answered ${a.status} via ${a.via}`;
    } catch (err) {
      r.call = `${err.name}: ${err.message}`;
    }
    r.directCalls = c.stats.directCalls;
    r.upgraded = await c.upgrade(hostId).catch((err) => `threw ${err.name}`);
    return r;
  }, cfg.hostId);
  summary.extras.later = later;
  check(later.path === "relayed", "after the revocation: no channel");
  check(/^PairingRevoked/.test(later.call), `a later call goes through the relay and fails as revoked (${later.call})`);
  check(later.directCalls === out.directCalls, "nothing more went over the channel");
  check(later.upgraded !== true, `no channel for a revoked client (${later.upgraded})`);
  await context.close();
}

// The host in a network namespace with UDP dropped: the upgrade fails within its bound
// (the channel never opens), and every call goes through the relay.
async function udpDropped(browser) {
  const page = await browser.newPage();
  await page.goto(cfg.relay + "/");
  const out = await page.evaluate(async (cfg) => {
    const sdk = await import("/ui/sdk.js");
    const c = new sdk.RelayClient({ relayUrl: location.origin, token: () => cfg.token, webrtc: { openMs: 5000 } });
    await c.pair(cfg.hostId, cfg.code, { clientName: "netns test", device: "chromium" });
    const first = await c.relayFetch(cfg.hostId, "/hello.txt");
    const r = { first: [first.via, first.status, await first.text()] };
    const start = performance.now();
    r.upgraded = await c.upgrade(cfg.hostId);
    r.tookMs = performance.now() - start;
    r.error = c.hostPath(cfg.hostId).lastError;
    r.calls = [];
    for (let i = 0; i < 5; i++) {
      const a = await c.relayFetch(cfg.hostId, "/hello.txt");
      r.calls.push([a.via, a.status, await a.text()]);
    }
    return r;
  }, cfg);
  summary.netns = out;
  check(out.upgraded === false && /did not open in time/.test(out.error), `the upgrade failed (${out.error})`);
  check(out.tookMs < 10000, `within its bound (${out.tookMs} ms)`);
  for (const call of [out.first, ...out.calls]) {
    check(call[0] === "relayed" && call[1] === 200 && call[2] === "hello from the namespace\n", `through the relay (${call})`);
  }
}

const browser = await chromium.launch({
  executablePath: cfg.chromium,
  // Host candidates as addresses (not mDNS names), loopback allowed: a host on this machine.
  args: [
    "--no-sandbox",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--allow-loopback-in-peer-connection",
    // The namespace's relay is on a veth address, not loopback: the SDK needs a secure
    // context (WebCrypto), which a real deployment has from https.
    ...(cfg.mode === "netns" ? [`--unsafely-treat-insecure-origin-as-secure=${cfg.relay}`] : []),
  ],
});
try {
  if (cfg.mode === "netns") {
    await udpDropped(browser);
  } else {
    const { context, page } = await theUi(browser);
    await theSdk(page);
    await context.close();
    await hostile(browser);
    await channelExtras(browser);
    summary.hostStats = await door("/stats");
  }
} catch (err) {
  let n = 0;
  for (const context of browser.contexts()) {
    for (const page of context.pages()) {
      await page.screenshot({ path: join(cfg.outDir, `webrtc-failure-${++n}.png`), fullPage: true }).catch(() => {});
    }
  }
  if (cfg.door) summary.hostStats = await door("/stats").catch(() => null);
  console.log(JSON.stringify({ ...summary, error: String(err?.stack ?? err) }));
  await browser.close();
  process.exit(1);
}
await browser.close();
console.log(JSON.stringify(summary));
