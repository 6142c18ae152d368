/**
 * Trusted proxies decide whose X-Forwarded-* headers are believed. Only a peer in
 * `trustedProxies` may tell us the client's address; everyone else's forwarded headers
 * are replaced, so a client cannot spoof its address (and so its hash placement or
 * partition) by sending X-Forwarded-For. Uses node:net BlockList for CIDR matching.
 */
import { BlockList, isIPv4, isIPv6 } from 'node:net';

/** TrustedProxies answers whether a peer address is a trusted proxy. */
export class TrustedProxies {
  readonly #list = new BlockList();
  readonly empty: boolean;

  /** entries are addresses or CIDRs such as "10.0.0.0/8", "::1", "127.0.0.1". */
  constructor(entries: readonly string[]) {
    for (const entry of entries) {
      const [address = '', prefix] = entry.split('/');
      const family = isIPv4(address) ? 'ipv4' : isIPv6(address) ? 'ipv6' : undefined;
      if (family === undefined) throw new Error(`trustedProxies: "${entry}" is not an IP address or CIDR`);
      if (prefix === undefined) this.#list.addAddress(address, family);
      else this.#list.addSubnet(address, Number(prefix), family);
    }
    this.empty = entries.length === 0;
  }

  /** trusts is true when the peer address is in the list. */
  trusts(address: string | undefined): boolean {
    if (this.empty || address === undefined) return false;
    const plain = address.startsWith('::ffff:') && isIPv4(address.slice(7)) ? address.slice(7) : address;
    return this.#list.check(plain, isIPv4(plain) ? 'ipv4' : 'ipv6');
  }

  /**
   * clientAddress is the address to route on: the peer itself, or, behind trusted
   * proxies, the right-most X-Forwarded-For entry that is not a trusted proxy.
   */
  clientAddress(peer: string | undefined, forwardedFor: string | undefined): string {
    const address = peer ?? '';
    if (forwardedFor === undefined || !this.trusts(peer)) return address;
    const hops = forwardedFor.split(',');
    for (let i = hops.length - 1; i >= 0; i--) {
      const hop = hops[i]!.trim();
      if (hop !== '' && !this.trusts(hop)) return hop;
    }
    return address;
  }
}
