// Driven by bench/p2p_browser.py: in headless Chromium on the relay's origin, the browser
// SDK's calls over the WebRTC data channel against the same calls through the relay, to
// the same host and local server. Prints one JSON line of raw figures.
import { createRequire } from "node:module";
import { join } from "node:path";

const cfg = JSON.parse(process.argv[2]);
const require = createRequire(join(cfg.clientsDir, "package.json"));
const { chromium } = require("playwright-core");

const browser = await chromium.launch({
  executablePath: cfg.chromium,
  args: ["--no-sandbox", "--disable-features=WebRtcHideLocalIpsWithMdns", "--allow-loopback-in-peer-connection"],
});
try {
  const page = await browser.newPage();
  await page.goto(cfg.relay + "/");
  const figures = await page.evaluate(async (cfg) => {
    const sdk = await import("/ui/sdk.js");
    const options = { relayUrl: location.origin, token: () => cfg.token };
    const relayed = new sdk.RelayClient({ ...options, webrtc: { enabled: false } });
    await relayed.pair(cfg.hostId, cfg.code, { clientName: "p2p bench", device: "chromium" });
    const direct = new sdk.RelayClient(options); // the same pairing (IndexedDB)
    await direct.relayFetch(cfg.hostId, "/echo");
    if (!(await direct.upgrade(cfg.hostId))) throw new Error(`no channel: ${direct.hostPath(cfg.hostId).lastError}`);
    const call = (client, via) => async () => {
      const r = await client.relayFetch(cfg.hostId, "/echo");
      await r.bytes();
      if (r.status !== 200 || r.via !== via) throw new Error(`${via}: ${r.status} via ${r.via}`);
    };
    const latency = async (f) => {
      for (let i = 0; i < 20; i++) await f();
      const times = [];
      for (let i = 0; i < cfg.requests; i++) {
        const start = performance.now();
        await f();
        times.push(performance.now() - start);
      }
      times.sort((a, b) => a - b);
      return { p50: times[Math.floor(times.length * 0.5)], p99: times[Math.floor(times.length * 0.99)] };
    };
    const rps = async (f) => {
      let done = 0;
      const end = performance.now() + cfg.seconds * 1000;
      const start = performance.now();
      await Promise.all(Array.from({ length: 16 }, async () => {
        while (performance.now() < end) {
          await f();
          done++;
        }
      }));
      return done / ((performance.now() - start) / 1000);
    };
    const download = async (client, via) => {
      const start = performance.now();
      const r = await client.relayFetch(cfg.hostId, `/blob?size=${cfg.downloadBytes}`);
      if (r.via !== via) throw new Error(`download went ${r.via}`);
      const reader = r.body.getReader();
      let got = 0;
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        got += value.length;
      }
      if (got !== cfg.downloadBytes) throw new Error(`got ${got} bytes`);
      return got / (1024 * 1024) / ((performance.now() - start) / 1000);
    };
    const out = {};
    for (const [name, client, via] of [["channel", direct, "direct"], ["relay", relayed, "relayed"]]) {
      const f = call(client, via);
      out[name] = { ...(await latency(f)), rps: await rps(f) };
    }
    out.relay.mibps = await download(relayed, "relayed");
    out.channel.mibps = await download(direct, "direct");
    return out;
  }, cfg);
  console.log(JSON.stringify(figures));
} finally {
  await browser.close();
}
