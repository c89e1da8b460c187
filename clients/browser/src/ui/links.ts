// What a link into the UI carries in its fragment (never sent to a server):
//   #token=TOKEN            a sign-in link (agent-relay tokens issue USER --link)
//   #pair=HOST_ID&code=CODE the pair link or QR code of the host's local page
// and the UI's own routes: #/hosts, #/pair/HOST_ID, #/host/HOST_ID.

export type Route =
  | { screen: "hosts" }
  | { screen: "pair"; hostId: string; code?: string }
  | { screen: "host"; hostId: string };

export interface LinkFragment {
  token?: string;
  pair?: { hostId: string; code: string };
}

export function readLinkFragment(hash: string): LinkFragment | null {
  const raw = hash.replace(/^#/, "");
  if (raw.startsWith("/") || !raw.includes("=")) return null;
  const params = new URLSearchParams(raw);
  const found: LinkFragment = {};
  const token = params.get("token");
  if (token) found.token = token;
  const hostId = params.get("pair");
  if (hostId) found.pair = { hostId, code: params.get("code") ?? "" };
  return found;
}

export function parseRoute(hash: string): Route {
  const parts = hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  if (parts[0] === "pair" && parts[1]) return { screen: "pair", hostId: parts[1] };
  if (parts[0] === "host" && parts[1]) return { screen: "host", hostId: parts[1] };
  return { screen: "hosts" };
}

export function routeHash(route: Route): string {
  if (route.screen === "hosts") return "#/hosts";
  return `#/${route.screen}/${encodeURIComponent(route.hostId)}`;
}
