// The JSON messages on the data channel (docs/webrtc.md, "Messages"), as the host's
// agent_relay.webrtc.messages: the reference's seven types plus our streamed-body
// extensions (hello, body, body_end, credit, cancel). decodeMessage checks every field the peer
// sent and throws MessageError with a short reason; encodeMessage leaves optional fields
// out when empty. Header names go lower case; `headers` maps a name to a list of values.
import { b64decode, b64encode, fromUtf8, utf8 } from "../bytes";

export const METHODS = new Set(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]);
export const WS_MSG_TYPES = new Set(["text", "binary", "ping", "pong", "close"]);
// "stream": streamed answers (asked for per request); "upload": streamed request bodies
// paced by the host's credit; "cancel": either side gives a request up.
export const EXTENSIONS = new Set(["stream", "upload", "cancel"]);
export const MAX_ID = 64;
export const MAX_PATH = 8192;
export const MAX_HEADERS = 100;

export class MessageError extends Error {
  override name = "MessageError";
}

export type ChannelHeaders = Record<string, string[]>;

export type ChannelMessage =
  | { type: "http_request"; id: string; method: string; path: string; headers: ChannelHeaders; body: Uint8Array; stream: boolean; upload: boolean }
  | { type: "http_response"; id: string; status: number; headers: ChannelHeaders; body: Uint8Array; stream: boolean }
  | { type: "ws_open"; conn_id: string; path: string; protocols: string | null; headers: ChannelHeaders }
  | { type: "ws_opened"; conn_id: string; selected_protocol: string | null }
  | { type: "ws_frame"; conn_id: string; msg_type: string; payload: Uint8Array }
  | { type: "ws_close"; conn_id: string; code: number | null; reason: string | null }
  | { type: "ws_error"; conn_id: string; error: string }
  | { type: "hello"; extensions: Set<string> }
  | { type: "body"; id: string; data: Uint8Array }
  | { type: "body_end"; id: string; error: string | null }
  | { type: "credit"; id: string; bytes: number }
  | { type: "cancel"; id: string; reason: string | null };

type Obj = Record<string, unknown>;

function str(obj: Obj, name: string, limit: number, optional = false): string | null {
  const value = obj[name];
  if ((value === undefined || value === null) && optional) return null;
  if (typeof value !== "string") throw new MessageError(`${name} must be a string`);
  if ([...value].length > limit) throw new MessageError(`${name} too long`);
  return value;
}

function id(obj: Obj, name = "id"): string {
  const value = str(obj, name, MAX_ID) as string;
  if (!value) throw new MessageError(`${name} is empty`);
  return value;
}

// One difference from the host's decoder, known and harmless: JSON.parse cannot tell 200
// from 200.0 or 2e2, so such a number is taken as the integer here where the host refuses
// it (a leniency toward the authenticated host's own answers only).
function int(obj: Obj, name: string, low: number, high: number, optional = false): number | null {
  const value = obj[name];
  if ((value === undefined || value === null) && optional) return null;
  if (typeof value !== "number" || !Number.isInteger(value) || value < low || value > high) {
    throw new MessageError(`${name} must be an integer in ${low}..${high}`);
  }
  return value;
}

function b64(obj: Obj, name: string): Uint8Array {
  const value = obj[name];
  if (value === undefined || value === null) return new Uint8Array(0);
  if (typeof value !== "string") throw new MessageError(`${name} must be a string`);
  try {
    return b64decode(value);
  } catch {
    throw new MessageError(`${name} is not base64`);
  }
}

function flag(obj: Obj, name: string): boolean {
  const value = Object.hasOwn(obj, name) ? obj[name] : false; // null is refused, as by the host
  if (typeof value !== "boolean") throw new MessageError(`${name} must be a boolean`);
  return value;
}

const ASCII = /^[\x00-\x7f]*$/;

function headers(obj: Obj, name = "headers"): ChannelHeaders {
  const value = obj[name];
  if (value === undefined || value === null) return {};
  if (typeof value !== "object" || Array.isArray(value) || Object.keys(value).length > MAX_HEADERS) {
    throw new MessageError(`${name} must be an object of at most ${MAX_HEADERS} names`);
  }
  const out: ChannelHeaders = Object.create(null) as ChannelHeaders;
  for (const [key, values] of Object.entries(value as Obj)) {
    if (!key || key.length > 256 || !ASCII.test(key)) throw new MessageError("bad header name");
    if (!Array.isArray(values) || values.length > MAX_HEADERS) throw new MessageError("header values must be a list of strings");
    for (const one of values) {
      if (typeof one !== "string" || [...one].length > MAX_PATH || one.includes("\r") || one.includes("\n")) {
        throw new MessageError("header values must be a list of strings");
      }
    }
    (out[key.toLowerCase()] ??= []).push(...(values as string[]));
  }
  return out;
}

function path(obj: Obj): string {
  const value = str(obj, "path", MAX_PATH) as string;
  if (!value.startsWith("/") || !ASCII.test(value) || /[ \r\n\t]/.test(value)) {
    throw new MessageError("path must be an absolute path and query");
  }
  return value;
}

const DECODERS: Record<string, (obj: Obj) => ChannelMessage> = {
  http_request(obj) {
    const method = str(obj, "method", 16) as string;
    if (!method || !/^[A-Za-z]+$/.test(method)) throw new MessageError("bad method");
    return { type: "http_request", id: id(obj), method: method.toUpperCase(), path: path(obj), headers: headers(obj), body: b64(obj, "body_b64"), stream: flag(obj, "stream"), upload: flag(obj, "upload") };
  },
  http_response(obj) {
    return { type: "http_response", id: id(obj), status: int(obj, "status", 100, 999) as number, headers: headers(obj), body: b64(obj, "body_b64"), stream: flag(obj, "stream") };
  },
  ws_open(obj) {
    return { type: "ws_open", conn_id: id(obj, "conn_id"), path: path(obj), protocols: str(obj, "protocols", 1024, true), headers: headers(obj) };
  },
  ws_opened(obj) {
    return { type: "ws_opened", conn_id: id(obj, "conn_id"), selected_protocol: str(obj, "selected_protocol", 256, true) };
  },
  ws_frame(obj) {
    const msgType = str(obj, "msg_type", 16) as string;
    if (!WS_MSG_TYPES.has(msgType)) throw new MessageError("bad msg_type");
    return { type: "ws_frame", conn_id: id(obj, "conn_id"), msg_type: msgType, payload: b64(obj, "payload_b64") };
  },
  ws_close(obj) {
    return { type: "ws_close", conn_id: id(obj, "conn_id"), code: int(obj, "code", 1000, 4999, true), reason: str(obj, "reason", 123, true) };
  },
  ws_error(obj) {
    return { type: "ws_error", conn_id: id(obj, "conn_id"), error: str(obj, "error", 1024) as string };
  },
  hello(obj) {
    const value = obj.extensions;
    if (!Array.isArray(value) || value.length > 16 || !value.every((v) => typeof v === "string")) {
      throw new MessageError("extensions must be a list of strings");
    }
    // Unknown names are ignored: a newer peer may offer more than we know.
    return { type: "hello", extensions: new Set((value as string[]).filter((v) => EXTENSIONS.has(v))) };
  },
  body(obj) {
    return { type: "body", id: id(obj), data: b64(obj, "data_b64") };
  },
  body_end(obj) {
    return { type: "body_end", id: id(obj), error: str(obj, "error", 1024, true) };
  },
  credit(obj) {
    return { type: "credit", id: id(obj), bytes: int(obj, "bytes", 1, 2 ** 30) as number };
  },
  cancel(obj) {
    return { type: "cancel", id: id(obj), reason: str(obj, "reason", 1024, true) };
  },
};

export function decodeMessage(data: Uint8Array): ChannelMessage {
  let obj: unknown;
  try {
    obj = JSON.parse(fromUtf8(data));
  } catch {
    throw new MessageError("not UTF-8 JSON");
  }
  if (typeof obj !== "object" || obj === null || Array.isArray(obj)) throw new MessageError("not a JSON object");
  const kind = (obj as Obj).type;
  const decoder = typeof kind === "string" && Object.hasOwn(DECODERS, kind) ? DECODERS[kind] : undefined;
  if (!decoder) throw new MessageError("unknown message type");
  return decoder(obj as Obj);
}

/** The message as compact UTF-8 JSON, optional fields left out when empty (the order
 *  of fields is the host's, so both sides write the same bytes). */
export function encodeMessage(message: ChannelMessage): Uint8Array {
  let obj: Obj;
  switch (message.type) {
    case "http_request":
      obj = { type: message.type, id: message.id, method: message.method, path: message.path, headers: message.headers };
      if (message.body.length) obj.body_b64 = b64encode(message.body);
      if (message.stream) obj.stream = true;
      if (message.upload) obj.upload = true;
      break;
    case "http_response":
      obj = { type: message.type, id: message.id, status: message.status, headers: message.headers };
      if (message.body.length) obj.body_b64 = b64encode(message.body);
      if (message.stream) obj.stream = true;
      break;
    case "ws_open":
      obj = { type: message.type, conn_id: message.conn_id, path: message.path };
      if (message.protocols) obj.protocols = message.protocols;
      if (Object.keys(message.headers).length) obj.headers = message.headers;
      break;
    case "ws_opened":
      obj = { type: message.type, conn_id: message.conn_id };
      if (message.selected_protocol) obj.selected_protocol = message.selected_protocol;
      break;
    case "ws_frame":
      obj = { type: message.type, conn_id: message.conn_id, msg_type: message.msg_type };
      if (message.payload.length) obj.payload_b64 = b64encode(message.payload);
      break;
    case "ws_close":
      obj = { type: message.type, conn_id: message.conn_id };
      if (message.code !== null) obj.code = message.code;
      if (message.reason) obj.reason = message.reason;
      break;
    case "ws_error":
      obj = { type: message.type, conn_id: message.conn_id, error: message.error };
      break;
    case "hello":
      obj = { type: message.type, extensions: [...message.extensions].sort() };
      break;
    case "body":
      obj = { type: message.type, id: message.id, data_b64: b64encode(message.data) };
      break;
    case "body_end":
      obj = { type: message.type, id: message.id };
      if (message.error) obj.error = message.error;
      break;
    case "credit":
      obj = { type: message.type, id: message.id, bytes: message.bytes };
      break;
    case "cancel":
      obj = { type: message.type, id: message.id };
      if (message.reason) obj.reason = message.reason;
      break;
  }
  return utf8(JSON.stringify(obj));
}
