// The host's clock as we estimate it. The host accepts timestamps within ±30 s of its
// own time and tells its time on every 401 (x-vk-host-time). A correction read from an
// answer the host signed is taken as is; one from an unsigned answer could be the
// relay's doing (pushing our timestamps ahead to replay a withheld request later), so
// it is bounded to the host's own window, 30 s, as in the Python client
// (agent_relay.client.clock).

export const MAX_UNVERIFIED_CORRECTION = 30;

export class HostClock {
  constructor(
    private readonly clock: () => number,
    public offset = 0,
    readonly maxUnverified = MAX_UNVERIFIED_CORRECTION,
  ) {}

  /** The host's time as we estimate it, in whole seconds. */
  now(): number {
    return Math.floor(this.clock() / 1000 + this.offset);
  }

  /** Adopt the host time in `header` (unix seconds); false when unusable or not believed. */
  observe(header: string | null, verified: boolean): boolean {
    if (header === null || header.length > 20 || !/^[0-9]+$/.test(header.trim())) return false;
    const offset = Number(header.trim()) - this.clock() / 1000;
    if (!verified && Math.abs(offset) > this.maxUnverified) return false;
    this.offset = offset;
    return true;
  }
}
