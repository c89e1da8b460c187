// The remote web UI: sign in, the user's hosts, pairing, and a host's view, every answer
// from a host read through relayFetch/relayWebSocket (signed, verified). Served by the
// relay at / (or from anywhere: <meta name="agent-relay-url"> names the relay).
import "./remote.css";
import {
  ChannelClosed,
  HostOffline,
  type HostInfo,
  keySupport,
  normalizeCode,
  NotPaired,
  PairingFailed,
  PairingRevoked,
  RelayClient,
  RelayRefused,
  type RelayWebSocket,
  SignatureInvalid,
  Timeout,
} from "../sdk/index";
import { ago, clear, h } from "./dom";
import { parseRoute, readLinkFragment, type Route, routeHash } from "./links";

const TOKEN_KEY = "agent-relay.token";
const HOSTS_EVERY_MS = 3000;
const PAIRING_CHECK_MS = 500; // a cleared IndexedDB is noticed this fast
const MAX_EVENTS = 30;
const MAX_SHOWN_BODY = 64 * 1024;

const relayUrl = (
  document.querySelector<HTMLMetaElement>('meta[name="agent-relay-url"]')?.content ||
  location.origin
).replace(/\/$/, "");
const main = document.getElementById("main") as HTMLElement;
const nav = document.getElementById("nav") as HTMLElement;

let token = localStorage.getItem(TOKEN_KEY) ?? "";
let pendingCode: { hostId: string; code: string } | null = null;
let notice: string | null = null; // shown once on the next screen
let stopScreen: () => void = () => {};
let hostsCache: HostInfo[] = [];

const client = new RelayClient({ relayUrl, token: () => token });

// ----------------------------------------------------------------------- start

function start(): void {
  takeLink();
  // A link opened while the page is open only changes the fragment: no reload.
  window.addEventListener("hashchange", () => {
    takeLink();
    render();
  });
  render();
}

/** Reads a sign-in or pair link's fragment, keeps what it carries, and takes it out of
 * the address bar (and history) at once: it held a secret. */
function takeLink(): void {
  const link = readLinkFragment(location.hash);
  if (!link) return;
  if (link.token) {
    token = link.token.trim();
    localStorage.setItem(TOKEN_KEY, token);
  }
  if (link.pair) pendingCode = { hostId: link.pair.hostId, code: normalizeCode(link.pair.code) };
  const next = link.pair ? routeHash({ screen: "pair", hostId: link.pair.hostId }) : "#/hosts";
  history.replaceState(null, "", location.pathname + location.search + next);
}

function go(route: Route): void {
  const hash = routeHash(route);
  if (location.hash === hash) render();
  else location.hash = hash;
}

function render(): void {
  stopScreen();
  stopScreen = () => {};
  clear(nav);
  if (!token) {
    signInScreen();
    return;
  }
  clear(
    nav,
    h("a", { href: "#/hosts" }, "Hosts"),
    h("button", { type: "button", class: "link", onclick: signOut }, "Sign out"),
  );
  const route = parseRoute(location.hash);
  if (route.screen === "pair") pairScreen(route.hostId);
  else if (route.screen === "host") hostScreen(route.hostId);
  else hostsScreen();
}

function signOut(): void {
  token = "";
  localStorage.removeItem(TOKEN_KEY);
  go({ screen: "hosts" });
}

function screen(title: string, ...children: (Node | string | null)[]): HTMLHeadingElement {
  const heading = h("h1", { tabindex: "-1", id: "screen-title" }, title);
  const shown = notice;
  notice = null;
  clear(main, heading, shown ? h("p", { class: "notice", role: "status" }, shown) : null, ...children);
  heading.focus();
  return heading;
}

function errorBox(): HTMLParagraphElement {
  return h("p", { class: "error", role: "alert", hidden: true });
}

function showError(box: HTMLElement, message: string): void {
  box.textContent = message;
  box.hidden = false;
}

/** What the UI does with an error every screen can meet. Returns true if handled. */
function common(err: unknown, hostId?: string): boolean {
  if (err instanceof RelayRefused && err.status === 401 && !hostId) {
    token = "";
    localStorage.removeItem(TOKEN_KEY);
    notice = "The relay did not accept the token. Sign in again.";
    render();
    return true;
  }
  if (hostId && (err instanceof NotPaired || err instanceof PairingRevoked)) {
    void client.forget(hostId).catch(() => {}); // the stored pairing is of no use now
    notice =
      err instanceof PairingRevoked
        ? "The host's owner revoked this browser. Pair again to reconnect."
        : "This browser is not paired with the host (anymore). Pair again.";
    go({ screen: "pair", hostId });
    return true;
  }
  return false;
}

function describe(err: unknown): string {
  if (err instanceof HostOffline) return "The host is offline. Start its connector and retry.";
  if (err instanceof Timeout) return "No answer in time. The host or the relay may be overloaded.";
  if (err instanceof RelayRefused) return `The relay refused the request (${err.status}): ${err.message}`;
  if (err instanceof SignatureInvalid) return verificationMessage(err);
  return err instanceof Error ? err.message : String(err);
}

function verificationMessage(err: Error): string {
  return (
    "An answer failed verification against the host's key and was not shown. " +
    `Something between this page and the host (the relay?) altered it. (${err.message})`
  );
}

// ----------------------------------------------------------------------- sign in

function signInScreen(): void {
  const box = errorBox();
  const input = h("input", {
    id: "token",
    name: "token",
    type: "password",
    autocomplete: "off",
    required: true,
    spellcheck: "false",
  });
  const form = h(
    "form",
    {
      onsubmit: (ev: Event) => {
        ev.preventDefault();
        const value = input.value.trim();
        if (!value) return showError(box, "Paste the token first.");
        token = value;
        localStorage.setItem(TOKEN_KEY, token);
        // Opened from a pair link before signing in: on to its pair screen.
        go(pendingCode ? { screen: "pair", hostId: pendingCode.hostId } : { screen: "hosts" });
      },
    },
    h("label", { for: "token" }, "Relay token"),
    input,
    h("button", { type: "submit" }, "Sign in"),
    box,
  );
  screen(
    "Sign in",
    h(
      "p",
      {},
      "Open the sign-in link from ",
      h("code", {}, "agent-relay tokens issue USER --link"),
      ", or paste a token here. It stays in this browser.",
    ),
    form,
  );
}

// ----------------------------------------------------------------------- hosts

function hostsScreen(): void {
  const list = h("ul", { class: "hosts", "aria-live": "polite", id: "hosts" });
  const box = errorBox();
  const updated = h("p", { class: "muted", id: "hosts-updated" }, "Loading…");
  screen("Hosts", updated, box, list);
  let timer = 0;
  let stopped = false;
  const refresh = async (): Promise<void> => {
    try {
      const hosts = await client.listHosts();
      if (stopped) return;
      hostsCache = hosts;
      box.hidden = true;
      updated.textContent = `Updated ${new Date().toLocaleTimeString()} · refreshes every few seconds`;
      clear(list, ...(hosts.length ? hosts.map(hostItem) : [h("li", {}, "No hosts yet: start a connector with your token.")]));
    } catch (err) {
      if (stopped || common(err)) return;
      showError(box, describe(err));
    }
    if (!stopped) timer = window.setTimeout(refresh, HOSTS_EVERY_MS);
  };
  void refresh();
  stopScreen = () => {
    stopped = true;
    clearTimeout(timer);
  };
}

function hostItem(host: HostInfo): HTMLLIElement {
  const action = host.paired
    ? h("a", { class: "button", href: routeHash({ screen: "host", hostId: host.id }) }, `Open ${host.name}`)
    : h("a", { class: "button secondary", href: routeHash({ screen: "pair", hostId: host.id }) }, `Pair ${host.name}`);
  return h(
    "li",
    { class: "host", "data-host": host.id },
    h("div", { class: "host-name" }, host.name),
    h(
      "div",
      { class: "host-facts" },
      h("span", { class: `badge ${host.status}` }, host.status),
      h("span", { class: `badge ${host.paired ? "paired" : "unpaired"}` }, host.paired ? "paired" : "not paired"),
      // The path of a paired host this page has reached: a data channel open, or the relay.
      host.paired && client.hostPath(host.id).path === "direct"
        ? h("span", { class: "badge direct", "data-path": "direct" }, "direct (WebRTC)")
        : null,
      h("span", { class: "muted" }, `last seen ${ago(host.lastSeenAt)}`),
    ),
    action,
  );
}

// ----------------------------------------------------------------------- pair

function hostName(hostId: string): string {
  return hostsCache.find((x) => x.id === hostId)?.name ?? "this host";
}

function deviceName(): string {
  const ua = navigator.userAgent;
  const browser = /Firefox\//.test(ua) ? "Firefox" : /Edg\//.test(ua) ? "Edge" : /Chrom/.test(ua) ? "Chrome" : /Safari\//.test(ua) ? "Safari" : "Browser";
  const os = /Android/.test(ua) ? "Android" : /iPhone|iPad/.test(ua) ? "iOS" : /Mac OS/.test(ua) ? "macOS" : /Windows/.test(ua) ? "Windows" : /Linux/.test(ua) ? "Linux" : "";
  return os ? `${browser} on ${os}` : browser;
}

function pairScreen(hostId: string): void {
  const prefill = pendingCode?.hostId === hostId ? pendingCode.code : "";
  pendingCode = null;
  const box = errorBox();
  const boxes = Array.from({ length: 6 }, (_, i) =>
    h("input", {
      class: "code-box",
      id: `code-${i}`,
      inputmode: "text",
      maxlength: "1",
      autocapitalize: "characters",
      autocomplete: i === 0 ? "one-time-code" : "off",
      spellcheck: "false",
      "aria-label": `Code character ${i + 1} of 6`,
    }),
  );
  const fill = (text: string, from: number): void => {
    const chars = normalizeCode(text).replace(/[^A-Z0-9]/g, "").split("");
    let i = from;
    for (const c of chars) {
      const target = boxes[i];
      if (!target) break;
      target.value = c;
      i++;
    }
    boxes[Math.min(i, 5)]?.focus();
  };
  boxes.forEach((input, i) => {
    input.addEventListener("input", () => {
      const value = input.value;
      input.value = "";
      if (value) fill(value, i);
    });
    input.addEventListener("paste", (ev: ClipboardEvent) => {
      ev.preventDefault();
      fill(ev.clipboardData?.getData("text") ?? "", i);
    });
    input.addEventListener("keydown", (ev: KeyboardEvent) => {
      if (ev.key === "Backspace" && !input.value && i > 0) {
        const prev = boxes[i - 1] as HTMLInputElement;
        prev.value = "";
        prev.focus();
        ev.preventDefault();
      } else if (ev.key === "ArrowLeft" && i > 0) boxes[i - 1]?.focus();
      else if (ev.key === "ArrowRight" && i < 5) boxes[i + 1]?.focus();
    });
  });
  const name = h("input", { id: "client-name", name: "client-name", value: `Web UI (${deviceName()})`, maxlength: "64" });
  const submit = h("button", { type: "submit", id: "pair-submit" }, "Pair");
  const form = h(
    "form",
    {
      onsubmit: async (ev: Event) => {
        ev.preventDefault();
        const code = boxes.map((b) => b.value).join("");
        if (code.length !== 6) return showError(box, "The code has six letters and digits.");
        box.hidden = true;
        submit.disabled = true;
        submit.textContent = "Pairing…";
        try {
          await client.pair(hostId, code, { clientName: name.value.trim() || deviceName(), device: deviceName() });
          notice = "Paired. Every answer from this host is now checked against its key.";
          go({ screen: "host", hostId });
        } catch (err) {
          if (common(err)) return;
          showError(box, pairFailure(err));
          boxes.forEach((b) => (b.value = ""));
          boxes[0]?.focus();
        } finally {
          submit.disabled = false;
          submit.textContent = "Pair";
        }
      },
    },
    h("fieldset", {}, h("legend", {}, "Pairing code from the host's page"), h("div", { class: "code-boxes" }, ...boxes)),
    h("label", { for: "client-name" }, "This browser's name (the host lists it)"),
    name,
    submit,
    box,
  );
  screen(
    `Pair with ${hostName(hostId)}`,
    h("p", {}, "On the host, open its local page and press ", h("strong", {}, "Generate pairing code"), ". Type the six characters here, or scan its QR code. The code never leaves this page: it proves both sides know it."),
    h("p", { class: "muted" }, "Host id ", h("code", {}, hostId)),
    form,
  );
  keySupport()
    .then((kind) => {
      if (kind === "noble") {
        form.append(h("p", { class: "notice" }, "This browser lacks WebCrypto Ed25519: the key is kept by script in IndexedDB instead of as a non-extractable key."));
      }
    })
    .catch(() => {}); // only a note; pairing says what is wrong if it fails
  if (prefill) fill(prefill, 0);
  else boxes[0]?.focus();
}

function pairFailure(err: unknown): string {
  if (err instanceof PairingFailed) {
    switch (err.reason) {
      case "bad_code":
      case "bad_proof":
      case "code_expired":
      case "unknown_enrollment":
        return "That code is wrong, expired or already used. Generate a new one on the host's page and try again.";
      case "rate_limited":
        return "Too many attempts. Wait a minute, then try with a new code.";
      default:
        return `Pairing failed: ${err.message}`;
    }
  }
  return describe(err);
}

// ----------------------------------------------------------------------- host view

function hostScreen(hostId: string): void {
  const box = errorBox();
  box.id = "verify-error";
  const badge = h(
    "p",
    { class: "verified", id: "verified-badge" },
    h("span", { "aria-hidden": "true" }, "✓ "),
    "Every answer on this screen was verified against the host's key.",
  );
  const content = h("div", { id: "host-content" }, h("p", { class: "muted" }, "Loading…"));
  const stops: (() => void)[] = [];
  screen(hostName(hostId), badge, pathView(hostId, stops), box, content);
  let stopped = false;
  stopScreen = () => {
    stopped = true;
    for (const stop of stops) stop();
  };
  const fail = (err: unknown): void => {
    if (stopped) return;
    if (common(err, hostId)) return;
    if (err instanceof SignatureInvalid) {
      badge.hidden = true;
      clear(content); // nothing that arrived with a bad signature stays on screen
    }
    showError(box, describe(err));
  };
  // A cleared IndexedDB (or a pairing forgotten in another tab) ends here at once.
  const watch = window.setInterval(async () => {
    try {
      const mine = await client.pairings();
      if (!stopped && !mine.some((p) => p.hostId === hostId)) fail(new NotPaired("no pairing stored"));
    } catch (err) {
      fail(err);
    }
  }, PAIRING_CHECK_MS);
  stops.push(() => clearInterval(watch));

  void (async () => {
    try {
      const answer = await client.relayFetch(hostId, "/api/workspaces");
      const data = answer.status === 200 ? await answer.json() : null;
      if (stopped) return;
      if (data && typeof data === "object" && Array.isArray((data as { workspaces?: unknown }).workspaces)) {
        const workspaces = (data as { workspaces: { id: string; name: string }[] }).workspaces;
        clear(content, workspacesView(hostId, workspaces, fail), eventsView(hostId, fail, stops), terminalView(hostId, fail, stops), consoleView(hostId, fail, false));
      } else {
        clear(content, consoleView(hostId, fail, true));
      }
    } catch (err) {
      fail(err);
    }
  })();
}

/** Which way this host's calls go: "direct (WebRTC)" once the data channel is open, else
 *  "via relay"; and the user's choice to keep to the relay. */
function pathView(hostId: string, stops: (() => void)[]): HTMLElement {
  const label = h("span", { id: "path-label" });
  const status = h("p", { class: "path", id: "path-badge", role: "status" }, "Path: ", label);
  const relayOnly = h("input", { type: "checkbox", id: "relay-only" });
  const show = (): void => {
    const path = client.hostPath(hostId);
    const direct = path.path === "direct";
    label.textContent = direct ? "direct (WebRTC)" : "via relay";
    status.className = direct ? "path direct" : "path relayed";
    status.dataset.path = path.path;
    status.title = !direct && path.lastError ? `WebRTC: ${path.lastError}` : "";
    relayOnly.checked = path.forcedRelayed;
  };
  relayOnly.addEventListener("change", () => client.forceRelayed(hostId, relayOnly.checked));
  stops.push(
    client.onPathChange((changed) => {
      if (changed === hostId) show();
    }),
  );
  show();
  return h(
    "div",
    { class: "path-row" },
    status,
    h("label", { class: "relay-only", for: "relay-only" }, relayOnly, " Use the relay only"),
  );
}

function workspacesView(hostId: string, workspaces: { id: string; name: string }[], fail: (e: unknown) => void): HTMLElement {
  const repos = h("div", { id: "repos", "aria-live": "polite" });
  const open = async (ws: { id: string; name: string }): Promise<void> => {
    clear(repos, h("p", { class: "muted" }, "Loading…"));
    try {
      const answer = await client.relayFetch(hostId, `/api/workspaces/${encodeURIComponent(ws.id)}/repos`);
      const data = (await answer.json()) as { repos?: { name: string; url: string }[] };
      clear(
        repos,
        h("h3", {}, `Repos in ${ws.name}`),
        h("ul", { class: "repos" }, ...(data.repos ?? []).map((r) => h("li", {}, h("strong", {}, r.name), " ", h("code", {}, r.url)))),
      );
    } catch (err) {
      clear(repos);
      fail(err);
    }
  };
  return h(
    "section",
    { "aria-labelledby": "h-ws" },
    h("h2", { id: "h-ws" }, "Workspaces"),
    h("ul", { class: "workspaces" }, ...workspaces.map((ws) => h("li", {}, h("button", { type: "button", class: "secondary", "data-workspace": ws.id, onclick: () => void open(ws) }, ws.name)))),
    repos,
  );
}

function eventsView(hostId: string, fail: (e: unknown) => void, stops: (() => void)[]): HTMLElement {
  // Focusable: it scrolls once the events fill it (keyboard users can scroll it too).
  const list = h("ol", { class: "events", id: "events", "aria-live": "polite", tabindex: "0", "aria-label": "Live events" });
  const controller = new AbortController();
  stops.push(() => controller.abort());
  // A stream over the WebRTC channel ends with the channel: it is asked for again, and
  // then comes through the relay (a few times at most, so a flapping channel shows).
  let resumes = 3;
  const follow = async (): Promise<void> => {
    try {
      const answer = await client.relayFetch(hostId, "/api/events", { signal: controller.signal });
      const reader = answer.body?.getReader();
      if (!reader) return;
      const decoder = new TextDecoder();
      let buffered = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffered += decoder.decode(value, { stream: true });
        let end: number;
        while ((end = buffered.indexOf("\n\n")) >= 0) {
          const block = buffered.slice(0, end);
          buffered = buffered.slice(end + 2);
          const kind = /^event: (.*)$/m.exec(block)?.[1] ?? "message";
          const data = /^data: (.*)$/m.exec(block)?.[1] ?? "";
          if (!/^retry:/.test(block) || data) {
            list.prepend(h("li", {}, h("span", { class: "badge" }, kind), " ", h("code", {}, data)));
            while (list.children.length > MAX_EVENTS) list.lastElementChild?.remove();
          }
        }
      }
    } catch (err) {
      if (controller.signal.aborted) return;
      if (err instanceof ChannelClosed && resumes-- > 0) return follow();
      fail(err);
    }
  };
  void follow();
  return h("section", { "aria-labelledby": "h-ev" }, h("h2", { id: "h-ev" }, "Live events"), list);
}

function terminalView(hostId: string, fail: (e: unknown) => void, stops: (() => void)[]): HTMLElement {
  const out = h("pre", { class: "terminal", id: "terminal", "aria-live": "polite", tabindex: "0", "aria-label": "Terminal output" });
  const line = h("input", { id: "terminal-input", autocomplete: "off", spellcheck: "false", "aria-label": "Terminal input" });
  let ws: RelayWebSocket | null = null;
  const write = (text: string): void => {
    out.textContent = (out.textContent + text).slice(-8000);
    out.scrollTop = out.scrollHeight;
  };
  let left = false;
  let resumes = 3;
  const connect = (): void => {
    try {
      const socket = client.relayWebSocket(hostId, "/api/terminal");
      ws = socket;
      socket.onmessage = (ev) => write(typeof ev.data === "string" ? ev.data : new TextDecoder().decode(ev.data));
      socket.onclose = (ev) => {
        write(`\r\n[closed${ev.reason ? `: ${ev.reason}` : ""}]\r\n`);
        if (/revoked/i.test(ev.reason)) fail(new PairingRevoked(ev.reason));
        // The WebRTC channel dropped under it: open it again (through the relay now).
        else if (!left && ev.code === 1006 && /WebRTC/.test(ev.reason) && resumes-- > 0) connect();
      };
      socket.onerror = (err) => {
        if (!/WebRTC/.test(err.message)) fail(err);
      };
    } catch (err) {
      fail(err);
    }
  };
  connect();
  stops.push(() => {
    left = true;
    ws?.close(1000, "left the page");
  });
  const form = h(
    "form",
    {
      class: "terminal-line",
      onsubmit: (ev: Event) => {
        ev.preventDefault();
        if (ws && ws.readyState === 1) ws.send(line.value);
        line.value = "";
      },
    },
    line,
    h("button", { type: "submit" }, "Send"),
  );
  return h("section", { "aria-labelledby": "h-term" }, h("h2", { id: "h-term" }, "Terminal"), out, form);
}

function consoleView(hostId: string, fail: (e: unknown) => void, open: boolean): HTMLElement {
  const method = h("select", { id: "rc-method" }, ...["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"].map((m) => h("option", {}, m)));
  const path = h("input", { id: "rc-path", value: "/", required: true, spellcheck: "false" });
  const headers = h("textarea", { id: "rc-headers", rows: "3", spellcheck: "false", placeholder: "Name: value (one a line)" });
  const body = h("textarea", { id: "rc-body", rows: "4", spellcheck: "false" });
  const result = h("div", { id: "rc-result", "aria-live": "polite" });
  const form = h(
    "form",
    {
      onsubmit: async (ev: Event) => {
        ev.preventDefault();
        clear(result, h("p", { class: "muted" }, "Sending…"));
        const init: RequestInit = { method: method.value, headers: parseHeaders(headers.value) };
        if (body.value && !["GET", "HEAD"].includes(method.value)) init.body = body.value;
        try {
          const answer = await client.relayFetch(hostId, path.value.startsWith("/") ? path.value : `/${path.value}`, init);
          const bytes = await answer.bytes(); // whole and verified before anything is shown
          const shown = new TextDecoder().decode(bytes.subarray(0, MAX_SHOWN_BODY));
          const type = answer.headers.get("content-type") ?? "application/octet-stream";
          const save = h("a", { class: "button secondary", download: downloadName(path.value), href: URL.createObjectURL(new Blob([bytes as BlobPart], { type })) }, `Save body (${bytes.length} bytes, verified)`);
          clear(
            result,
            h("p", {}, h("strong", {}, `Status ${answer.status}`), " · verified"),
            h("pre", { class: "headers" }, [...answer.headers].map(([k, v]) => `${k}: ${v}`).join("\n")),
            h("pre", { class: "body" }, shown + (bytes.length > MAX_SHOWN_BODY ? "\n… (cut; save it to see all)" : "")),
            save,
          );
        } catch (err) {
          clear(result);
          fail(err);
        }
      },
    },
    h("div", { class: "row" }, h("label", { for: "rc-method" }, "Method"), method, h("label", { for: "rc-path" }, "Path"), path),
    h("label", { for: "rc-headers" }, "Headers"),
    headers,
    h("label", { for: "rc-body" }, "Body"),
    body,
    h("button", { type: "submit" }, "Send signed request"),
  );
  const details = h("details", { class: "console" }, h("summary", {}, "Request console (any path on the host's local server)"), form, result);
  details.open = open;
  return h("section", { "aria-label": "Request console" }, details);
}

function parseHeaders(text: string): [string, string][] {
  return text
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean)
    .map((l) => {
      const at = l.indexOf(":");
      return [l.slice(0, at).trim(), l.slice(at + 1).trim()] as [string, string];
    })
    .filter(([k]) => k.length > 0);
}

function downloadName(path: string): string {
  const last = path.split("?")[0]?.split("/").filter(Boolean).pop();
  return last || "response";
}

start();
