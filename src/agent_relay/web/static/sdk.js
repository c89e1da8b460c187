// src/sdk/index.ts
var NotPaired = class extends Error {
};
var PairingRevoked = class extends Error {
};
var HostOffline = class extends Error {
};
var SignatureInvalid = class extends Error {
};
var Timeout = class extends Error {
};
var RelayRefused = class extends Error {
  status;
  constructor(status, message) {
    super(message);
    this.status = status;
  }
};
var PairingFailed = class extends Error {
  reason;
  constructor(reason, message) {
    super(message);
    this.reason = reason;
  }
};
var notYet = () => {
  throw new Error("not yet");
};
function normalizeCode(input) {
  return input.trim().toUpperCase().replace(/[\s-]/g, "");
}
function keySupport() {
  return notYet();
}
var RelayClient = class {
  constructor(opts) {
    void opts;
  }
  listHosts() {
    return notYet();
  }
  pair(hostId, code, info) {
    void hostId, code, info;
    return notYet();
  }
  pairings() {
    return notYet();
  }
  forget(hostId) {
    void hostId;
    return notYet();
  }
  relayFetch(hostId, path, init) {
    void hostId, path, init;
    return notYet();
  }
  relayWebSocket(hostId, path) {
    void hostId, path;
    return notYet();
  }
};
export {
  HostOffline,
  NotPaired,
  PairingFailed,
  PairingRevoked,
  RelayClient,
  RelayRefused,
  SignatureInvalid,
  Timeout,
  keySupport,
  normalizeCode
};
