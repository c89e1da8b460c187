// The remote web UI end to end in headless Chromium (Debian's, driven by playwright-core),
// against a real demo (relay, connector, sample server) and a hostile relay in front of
// it. Run by test_remote_ui.py, which passes the addresses as JSON in argv[2] and reads
// the summary this prints as its last line. Every step asserts; the first failure exits 1.
import { createRequire } from "node:module";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

const cfg = JSON.parse(process.argv[2]);
const require = createRequire(join(cfg.clientsDir, "package.json"));
const { chromium } = require("playwright-core");
const axeSource = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");

const summary = { screens: [], axe: {}, revokeMs: {}, clearedMs: {}, steps: 0 };
mkdirSync(cfg.outDir, { recursive: true });

function check(ok, message) {
  if (!ok) throw new Error(`check failed: ${message}`);
  summary.steps++;
}

async function shoot(page, label, name) {
  await page.waitForTimeout(150); // let a layout settle (fonts are local; no network)
  const file = join(cfg.outDir, `${label}-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  summary.screens.push(file);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow <= 0, `${label}-${name}: no sideways scrolling (${overflow} px too wide)`);
  // axe in the same browser, on the same screen; evaluate() is not subject to the CSP.
  await page.evaluate(axeSource);
  const result = await page.evaluate(() =>
    // eslint-disable-next-line no-undef
    axe.run(document, { resultTypes: ["violations"] }),
  );
  const bad = result.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  summary.axe[`${label}-${name}`] = bad.map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`);
}

async function newCode(local, hostPage) {
  await local.goto(hostPage);
  await local.click("#new-code");
  await local.waitForSelector("#pair-link");
  return local.getAttribute("#pair-link", "href");
}

let pairings = 0;
async function pairVia(page, link) {
  await page.goto(link);
  await page.waitForSelector("#pair-submit");
  // A name of its own, so the host page's revoke button for this very client is found.
  const name = `Web UI test ${++pairings}`;
  await page.fill("#client-name", name);
  page.clientName = name;
  const filled = await page.$$eval(".code-box", (boxes) => boxes.map((b) => b.value).join(""));
  check(/^[A-Z0-9]{6}$/.test(filled), `the pair link filled in the code (${filled})`);
  check(!page.url().includes("code="), "the code left the address bar");
  return filled;
}

async function run(browser, label, viewport) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (err) => errors.push(String(err)));
  page.on("console", (msg) => {
    if (msg.type() === "error" && /Content Security Policy/.test(msg.text())) errors.push(msg.text());
  });

  // Sign in: first the screen as a newcomer sees it, then the link.
  await page.goto(cfg.relay + "/");
  await page.waitForSelector("#token");
  await shoot(page, label, "1-sign-in");
  await page.goto(cfg.signInLink);
  await page.waitForSelector("li.host");
  check(!page.url().includes("token="), "the token left the address bar");
  check(!(await page.evaluate(() => history.length > 2 && location.href.includes("token"))), "no token in history");
  await page.waitForSelector(`li.host[data-host="${cfg.hostId}"] .badge.online`);
  check((await page.textContent(`li.host[data-host="${cfg.hostId}"]`)).includes("not paired"), "host listed as not paired");
  await shoot(page, label, "2-hosts");

  // A code on the host's page; its link opens the pair screen filled in.
  const local = await context.newPage();
  const link = await newCode(local, cfg.hostPage);
  check(link.startsWith(cfg.relay + "/#pair="), `pair link points at the UI (${link})`);
  await shoot(local, label, "3-host-page-code");
  await pairVia(page, link);
  await shoot(page, label, "4-pair");
  await page.click("#pair-submit");

  // Host view: verified badge, workspaces, repos, live events, terminal.
  await page.waitForSelector("#verified-badge");
  await page.waitForSelector("[data-workspace]");
  const names = await page.$$eval("[data-workspace]", (b) => b.map((x) => x.textContent));
  check(names.includes("agent-relay") && names.includes("homelab"), `workspaces shown (${names})`);
  await page.click("[data-workspace]");
  await page.waitForSelector("ul.repos li");
  await page.waitForSelector("#events li");
  const before = await page.$$eval("#events li", (l) => l.length);
  await page.waitForFunction((n) => document.querySelectorAll("#events li").length > n, before, { timeout: 10000 });
  await page.waitForFunction(() => document.getElementById("terminal")?.textContent.includes("$ "));
  await page.fill("#terminal-input", "echo from chromium");
  await page.press("#terminal-input", "Enter");
  await page.waitForFunction(() => document.getElementById("terminal").textContent.includes("echo from chromium\r\n$ ") || document.getElementById("terminal").textContent.includes("echo from chromium\n$ "));
  await shoot(page, label, "5-host-view");

  // Revoke on the host's page: the remote page asks to pair again within a second.
  await local.goto(cfg.hostPage);
  const revoke = `button[aria-label="Revoke ${page.clientName}"]`;
  await local.waitForSelector(revoke);
  await shoot(local, label, "6-host-page-clients");
  const revokedAt = Date.now();
  await local.click(revoke);
  await page.waitForSelector("#pair-submit", { timeout: 5000 });
  summary.revokeMs[label] = Date.now() - revokedAt;
  await shoot(page, label, "7-pair-again");

  // Pair again, then clear IndexedDB: the same "pair again".
  await pairVia(page, await newCode(local, cfg.hostPage));
  await page.click("#pair-submit");
  await page.waitForSelector("[data-workspace]");
  const cdp = await context.newCDPSession(page);
  const clearedAt = Date.now();
  await cdp.send("Storage.clearDataForOrigin", { origin: cfg.relay, storageTypes: "indexeddb" });
  await page.waitForSelector("#pair-submit", { timeout: 5000 });
  summary.clearedMs[label] = Date.now() - clearedAt;

  // A hostile relay flips one byte of the workspaces answer: an error, never the data.
  const evil = await context.newPage();
  await evil.goto(`${cfg.hostile}/#token=${encodeURIComponent(cfg.token)}`);
  await evil.waitForSelector("li.host");
  const code = new URL(await newCode(local, cfg.hostPage)).hash;
  await pairVia(evil, `${cfg.hostile}/${code}`);
  await evil.click("#pair-submit");
  await evil.waitForSelector("#verify-error:not([hidden])", { timeout: 10000 });
  const shown = await evil.textContent("main");
  check(/verification/i.test(shown), "a verification error is shown");
  check(!shown.includes(cfg.tampered) && !(await evil.isVisible("[data-workspace]")), "the altered data is never shown");
  check(!(await evil.isVisible("#verified-badge")), "no verified badge beside a failed answer");
  await shoot(evil, label, "8-verification-error");

  check(errors.length === 0, `no page errors or CSP violations: ${errors.join(" | ")}`);
  await context.close();
}

// The host's local page alone (no SDK involved): every state, both sizes.
async function hostPage(browser, label, viewport) {
  const context = await browser.newContext({ viewport });
  const local = await context.newPage();
  const errors = [];
  local.on("pageerror", (err) => errors.push(String(err)));
  local.on("console", (msg) => {
    if (msg.type() === "error" && /Content Security Policy/.test(msg.text())) errors.push(msg.text());
  });
  await local.goto(cfg.hostPage);
  check((await local.textContent("main")).includes(cfg.hostId), "the host id is shown");
  await shoot(local, label, "host-page");
  const link = await newCode(local, cfg.hostPage);
  check(link.startsWith(cfg.relay + "/#pair=" + cfg.hostId + "&code="), `pair link (${link})`);
  check(await local.isVisible(".qr svg"), "a QR code of the link");
  const first = await local.textContent("#countdown");
  await local.waitForFunction((t) => document.getElementById("countdown").textContent !== t, first, { timeout: 3000 });
  check(!/[01IO]/.test(await local.textContent("#code")), "no look-alike characters in the code");
  await shoot(local, label, "host-page-code");
  check(errors.length === 0, `no page errors or CSP violations: ${errors.join(" | ")}`);
  await context.close();
}

// A host's own HTML page opened through the relay: it must not run as the relay's origin.
async function sandboxed(browser) {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(cfg.relay + "/");
  // Where the UI keeps its token (a made-up one: the page is not used further).
  await page.evaluate(() => localStorage.setItem("agent-relay.token", "secret-of-the-ui"));
  await page.goto(cfg.hostHtml);
  check((await page.textContent("h1")).includes("Sample local agent server"), "the host's page shows");
  const seen = await page.evaluate(() => {
    const attempt = (f) => {
      try {
        return String(f());
      } catch (err) {
        return `refused: ${err.name}`;
      }
    };
    return { origin: self.origin, storage: attempt(() => localStorage.getItem("agent-relay.token")), cookie: attempt(() => document.cookie) };
  });
  check(seen.origin === "null", `opaque origin (${seen.origin})`);
  check(seen.storage.startsWith("refused"), `no access to the relay origin's storage (${seen.storage})`);
  check(seen.cookie.startsWith("refused"), `no cookies (${seen.cookie})`);
  summary.sandbox = seen;
  await context.close();
}

const browser = await chromium.launch({ executablePath: cfg.chromium, args: ["--no-sandbox"] });
try {
  if (cfg.mode === "sandbox") {
    await sandboxed(browser);
  } else if (cfg.mode === "host-page") {
    await hostPage(browser, "desktop", { width: 1280, height: 900 });
    await hostPage(browser, "phone", { width: 390, height: 844 });
  } else {
    // One size a run: a host lets one address try 5 pairings a minute, a run makes 3.
    const sizes = { desktop: { width: 1280, height: 900 }, phone: { width: 390, height: 844 } };
    await run(browser, cfg.size, sizes[cfg.size]);
  }
} catch (err) {
  // What the pages showed when it failed, beside the screens.
  let n = 0;
  for (const context of browser.contexts()) {
    for (const page of context.pages()) {
      await page.screenshot({ path: join(cfg.outDir, `failure-${++n}.png`), fullPage: true }).catch(() => {});
    }
  }
  console.log(JSON.stringify({ ...summary, error: String(err?.stack ?? err) }));
  await browser.close();
  process.exit(1);
}
await browser.close();
console.log(JSON.stringify(summary));
