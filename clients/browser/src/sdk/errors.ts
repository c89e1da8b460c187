// The SDK's typed errors. "Pair again" is one state: NotPaired, with PairingRevoked as
// the case where the host said so (revoked, or it no longer knows this client).

export class NotPaired extends Error {
  override name = "NotPaired";
}
/** The host revoked this client, or forgot it: pair again. The local pairing is gone. */
export class PairingRevoked extends NotPaired {
  override name = "PairingRevoked";
}
export class HostOffline extends Error {
  override name = "HostOffline";
}
/** An answer failed its check against the host's key: forged, altered, replayed,
 *  reordered or cut short. None of its data is handed out. */
export class SignatureInvalid extends Error {
  override name = "SignatureInvalid";
}
export class Timeout extends Error {
  override name = "Timeout";
}
/** The relay refused (bad token, no access, overloaded), or the host refused a signed
 *  request for a reason a new pairing does not cure (`reason` then says which). */
export class RelayRefused extends Error {
  override name = "RelayRefused";
  status: number;
  reason: string;
  constructor(status: number, message: string, reason = "relay") {
    super(message);
    this.status = status;
    this.reason = reason;
  }
}
/** Pairing failed: `reason` is the host's (bad_code, code_expired, bad_proof,
 *  rate_limited, …) or ours (bad_input, bad_answer, host_proof). */
export class PairingFailed extends Error {
  override name = "PairingFailed";
  reason: string;
  constructor(reason: string, message: string) {
    super(message);
    this.reason = reason;
  }
}
/** A call over the WebRTC channel got no answer in time, and the host refused the very
 *  same signed call through the relay as a replay: it may have run once. It was not run
 *  twice. */
export class MayHaveRun extends Error {
  override name = "MayHaveRun";
}
