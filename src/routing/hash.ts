/**
 * Hashing for routing. Hand-written because it runs for every new session and every
 * library alternative allocates or hashes with crypto (far slower than needed for
 * placement, which is not a security boundary: the affinity cookie is HMAC-signed).
 */

/** hash32 is 32-bit FNV-1a over the UTF-16 code units of a string, finished with fmix32. */
export function hash32(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return fmix32(h);
}

/** fmix32 is MurmurHash3's finaliser: spreads every input bit over the whole word. */
export function fmix32(value: number): number {
  let h = value | 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * rendezvousScore is the weighted rendezvous (highest random weight) score of a key on a
 * backend: weight / -ln(u), u uniform in (0,1) from hash(key, backend). The backend with
 * the highest score wins; adding or removing one backend moves only the keys it wins or
 * loses, the ideal k/N. See Schindelhauer & Schomaker, "Weighted Distributed Hash
 * Tables" (SPAA 2005), and Thaler & Ravishankar, "Using name-based mappings to increase
 * hit rates" (1998).
 */
export function rendezvousScore(keyHash: number, backendHash: number, weight: number): number {
  return weightedScore(rendezvousHash(keyHash, backendHash), weight);
}

/**
 * rendezvousHash is the 32-bit hash of (key, backend) under rendezvousScore. Among
 * backends of equal weight the score grows with it, so the router compares these and
 * skips the logarithm when all candidates weigh the same (the common pool).
 */
export function rendezvousHash(keyHash: number, backendHash: number): number {
  return fmix32(keyHash ^ Math.imul(backendHash, 0x9e3779b1));
}

/** weightedScore turns a rendezvousHash into the weighted score: weight / -ln(u), u = (hash + 0.5) / 2^32. */
export function weightedScore(hash: number, weight: number): number {
  return weight / -Math.log((hash + 0.5) / 4294967296);
}
