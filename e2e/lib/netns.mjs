// A network namespace joined to the host by a veth pair, for cutting one browser's network
// (needs root: `ip netns`, `ip link`). Names are unique per call; `destroy()` removes
// everything and is safe to call more than once, also after a partial setup.
//
//   host  <hostIf> 10.77.N.1/30  ──veth──  <nsIf> 10.77.N.2/30  (namespace <ns>)
//
// `wrapper` is an executable that runs chromium inside the namespace, for playwright's
// `executablePath` (playwright talks to the browser over stdio pipes, which cross namespaces).
// `setLink()` cuts the link (a carrier change chromium notices); `drop()` makes a silent cut
// with nftables (needs `nft`): packets vanish while the link stays up.

import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

async function ip(...args) {
  try {
    const { stdout } = await execFileP('ip', args, { timeout: 10_000 });
    return stdout;
  } catch (err) {
    throw new Error(`ip ${args.join(' ')} failed: ${err.stderr?.trim() || err.message}`);
  }
}

/** Runs an nftables script, in namespace `ns` (null: the host's). */
function nft(ns, script) {
  const args = ns ? ['netns', 'exec', ns, 'nft', '-f', '-'] : null;
  return new Promise((resolve, reject) => {
    const child = args ? execFile('ip', args, { timeout: 10_000 }, done) : execFile('nft', ['-f', '-'], { timeout: 10_000 }, done);
    function done(err, _stdout, stderr) {
      if (err) reject(new Error(`nft ${ns ? `(in ${ns}) ` : ''}failed: ${stderr?.trim() || err.message}\n${script}`));
      else resolve();
    }
    child.stdin.end(`${script}\n`);
  });
}

export class NetNs {
  constructor() {
    const id = randomBytes(3).toString('hex');
    this.ns = `ktns-${id}`;
    this.hostIf = `kth${id}`; // interface names have at most 15 characters
    this.nsIf = `ktn${id}`;
    const octet = 1 + (randomBytes(1)[0] % 250); // a /30 of its own: 10.77.N.0/30
    this.hostIp = `10.77.${octet}.1`;
    this.nsIp = `10.77.${octet}.2`;
    this.wrapper = null;
    this.dir = null;
  }

  /** Create the namespace, the veth pair and the chromium wrapper. */
  async create({ chromium = '/usr/bin/chromium' } = {}) {
    // Another namespace (a test run in parallel, a leftover) may hold this /30: pick a free one.
    const used = await ip('-o', '-4', 'addr', 'show').catch(() => '');
    for (let k = 0; k < 250 && used.includes(` ${this.hostIp}/`); k++) {
      const octet = 1 + (Number(this.hostIp.split('.')[2]) % 250); // the next one
      this.hostIp = `10.77.${octet}.1`;
      this.nsIp = `10.77.${octet}.2`;
    }
    await ip('netns', 'add', this.ns);
    await ip('link', 'add', this.hostIf, 'type', 'veth', 'peer', 'name', this.nsIf);
    // No IPv6 link-local addresses: their late arrival (after duplicate address detection,
    // a second or two after the link comes up) is a "network change" to chromium, which
    // aborts the page loads in flight (net::ERR_NETWORK_CHANGED): on the host for the host
    // end, and in the namespace for the other end. Moving an interface to another namespace
    // resets its addrgenmode (to eui64), so the namespace end is set after the move.
    await ip('link', 'set', this.hostIf, 'addrgenmode', 'none');
    await ip('link', 'set', this.nsIf, 'netns', this.ns);
    await ip('netns', 'exec', this.ns, 'ip', 'link', 'set', this.nsIf, 'addrgenmode', 'none');
    await ip('addr', 'add', `${this.hostIp}/30`, 'dev', this.hostIf);
    await ip('link', 'set', this.hostIf, 'up');
    await ip('netns', 'exec', this.ns, 'ip', 'addr', 'add', `${this.nsIp}/30`, 'dev', this.nsIf);
    await ip('netns', 'exec', this.ns, 'ip', 'link', 'set', this.nsIf, 'up');
    await ip('netns', 'exec', this.ns, 'ip', 'link', 'set', 'lo', 'up');
    // The kernel reports the link's carrier (operstate UP) asynchronously, up to a second
    // later: wait for it here, so that chromium, started next, sees a settled network.
    await this.waitOperUp();
    const v6 = await ip('netns', 'exec', this.ns, 'ip', '-6', '-o', 'addr', 'show', 'dev', this.nsIf);
    if (v6.trim()) throw new Error(`${this.nsIf} has IPv6 addresses (a late network change for chromium): ${v6.trim()}`);
    this.dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'ketang-netns-'));
    this.wrapper = path.join(this.dir, 'chromium-in-netns.sh');
    const script = `#!/bin/sh\nexec ip netns exec ${this.ns} ${chromium} "$@"\n`;
    await fsp.writeFile(this.wrapper, script, { mode: 0o755 });
    return this;
  }

  /** Wait (at most 5 s) until both ends of the veth pair are operationally up. */
  async waitOperUp(timeoutMs = 5000) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const host = await ip('-o', 'link', 'show', 'dev', this.hostIf);
      const inNs = await ip('netns', 'exec', this.ns, 'ip', '-o', 'link', 'show', 'dev', this.nsIf);
      if (/state UP/.test(host) && /state UP/.test(inNs)) return;
      if (Date.now() > deadline) throw new Error(`veth pair not up after ${timeoutMs} ms:\n${host}\n${inNs}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Cut (false) or restore (true) the link, on the host side. */
  async setLink(up) {
    await ip('link', 'set', this.hostIf, up ? 'up' : 'down');
  }

  /**
   * A silent cut, as on a WAN that stops forwarding: nftables drops `what` ('all', or 'udp'
   * for a firewall that lets only TCP through) on both ends of the veth, in and out, while the
   * link stays up (no carrier change, no error: packets just vanish). `null` lifts it.
   */
  async drop(what) {
    const table = `ktcut_${this.hostIf}`;
    await nft(null, `delete table inet ${table}`).catch(() => {});
    await nft(this.ns, `delete table inet ${table}`).catch(() => {});
    if (what === null) return;
    if (what !== 'all' && what !== 'udp') throw new Error(`drop(${what}): 'all', 'udp' or null`);
    const match = what === 'udp' ? 'meta l4proto udp ' : '';
    const rules = (dev) => [
      `table inet ${table} {`,
      `  chain cut_in { type filter hook input priority -150; iifname "${dev}" ${match}drop; }`,
      `  chain cut_out { type filter hook output priority -150; oifname "${dev}" ${match}drop; }`,
      `  chain cut_fwd { type filter hook forward priority -150; iifname "${dev}" ${match}drop; oifname "${dev}" ${match}drop; }`,
      '}',
    ].join('\n');
    await nft(null, rules(this.hostIf));
    await nft(this.ns, rules(this.nsIf));
  }

  /**
   * A firewall that lets the namespace reach only TCP `ports` of the host (e.g. HTTPS and a
   * TURN server): every other packet on its end of the veth is dropped, UDP included. Lifted
   * by `drop(null)`.
   */
  async allowOnlyTcp(ports) {
    await this.drop(null);
    const table = `ktcut_${this.hostIf}`;
    const set = `{ ${ports.join(', ')} }`;
    await nft(this.ns, [
      `table inet ${table} {`,
      `  chain cut_in { type filter hook input priority -150; iifname "${this.nsIf}" tcp sport ${set} accept; iifname "${this.nsIf}" drop; }`,
      `  chain cut_out { type filter hook output priority -150; oifname "${this.nsIf}" tcp dport ${set} accept; oifname "${this.nsIf}" drop; }`,
      '}',
    ].join('\n'));
  }

  /**
   * Limit what the host sends into the namespace (the page's downlink) to `kbit` kbit/s with a
   * token bucket on the host end; `null` removes the limit.
   */
  async limitDownlink(kbit) {
    await execFileP('tc', ['qdisc', 'del', 'dev', this.hostIf, 'root'], { timeout: 10_000 }).catch(() => {});
    if (kbit === null) return;
    try {
      await execFileP('tc', ['qdisc', 'add', 'dev', this.hostIf, 'root', 'tbf', 'rate', `${kbit}kbit`, 'burst', '16kb', 'latency', '200ms'], { timeout: 10_000 });
    } catch (err) {
      throw new Error(`tc qdisc add dev ${this.hostIf} root tbf failed: ${err.stderr?.trim() || err.message}`);
    }
  }

  /** Remove the namespace, the veth pair (both ends), the wrapper and any cut. Never throws. */
  async destroy() {
    const problems = [];
    await nft(null, `delete table inet ktcut_${this.hostIf}`).catch(() => {});
    await ip('netns', 'del', this.ns).catch((e) => { if (!/No such file|Cannot find/.test(e.message)) problems.push(e.message); });
    // Deleting the namespace deletes its veth end and so the pair; this is for a partial setup.
    await ip('link', 'del', this.hostIf).catch(() => {});
    if (this.dir) await fsp.rm(this.dir, { recursive: true, force: true }).catch(() => {});
    const left = await ip('-o', 'link', 'show').catch(() => '');
    if (left.includes(`${this.hostIf}@`) || left.includes(`${this.hostIf}:`)) problems.push(`${this.hostIf} still exists`);
    const spaces = await ip('netns', 'list').catch(() => '');
    if (spaces.split('\n').some((l) => l.split(' ')[0] === this.ns)) problems.push(`${this.ns} still exists`);
    return problems;
  }
}
