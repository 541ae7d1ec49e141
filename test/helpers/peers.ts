// Real SIP peers (SIPp, sipsak, baresip) are Debian packages that .ci/run installs. Locally a missing peer
// skips its tests with the reason; with SWITCHBOARD_REQUIRE_PEERS=1 (set by .ci/run) it fails them instead,
// so CI can never pass by skipping.

import { execFileSync } from 'node:child_process';

const cache = new Map<string, string | null>();

export function which(bin: string): string | null {
  if (!cache.has(bin)) {
    try {
      cache.set(bin, execFileSync('sh', ['-c', `command -v ${bin}`], { encoding: 'utf8' }).trim() || null);
    } catch {
      cache.set(bin, null);
    }
  }
  return cache.get(bin)!;
}

/** For node:test's `skip` option: false when the peer is present, else the reason (or a throw under CI). */
export function missingPeer(...bins: string[]): string | false {
  const missing = bins.filter((b) => which(b) === null);
  if (missing.length === 0) return false;
  const reason = `${missing.join(', ')} not installed (apt-get install -y sip-tester sipsak baresip)`;
  if (process.env.SWITCHBOARD_REQUIRE_PEERS === '1') throw new Error(`required peer missing: ${reason}`);
  return reason;
}
