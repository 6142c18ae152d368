/** Helpers shared by the routing tests: build a snapshot and a routing context from tables. */
import type { BackendState, PoolSnapshot } from '../../src/pool/snapshot.js';
import { buildSnapshot } from '../../src/pool/snapshot.js';
import { AffinityCookieCodec } from '../../src/routing/affinity-cookie.js';
import type { RoutingContext } from '../../src/routing/types.js';

export interface BackendSpec {
  id: string;
  state?: BackendState;
  weight?: number;
  maxSessions?: number;
  route?: string;
  /** With state 'down': its sessions are held for it (within affinity.failoverDelay). */
  holding?: boolean;
}

let version = 0;

/** pool builds a snapshot; backend i gets url http://10.0.0.(i+1):8080. */
export function pool(specs: readonly BackendSpec[]): PoolSnapshot {
  return buildSnapshot(
    specs.map((spec, i) => ({
      config: {
        id: spec.id,
        url: `http://10.0.${i >> 8}.${(i & 255) + 1}:8080`,
        weight: spec.weight ?? 1,
        ...(spec.maxSessions !== undefined ? { maxSessions: spec.maxSessions } : {}),
        ...(spec.route !== undefined ? { route: spec.route } : {}),
      },
      state: spec.state ?? 'up',
      holding: spec.holding ?? false,
    })),
    ++version,
  );
}

/** ids makes specs for backends named prefix0..prefix(n-1), all up. */
export function ids(n: number, prefix = 'servoy-'): BackendSpec[] {
  return Array.from({ length: n }, (_, i) => ({ id: `${prefix}${i}` }));
}

export const SECRET = 'test-secret-0123456789';
export const codec = new AffinityCookieCodec([SECRET]);

/** context is a RoutingContext over plain maps, with a load counter tests may change. */
export function context(options: { loads?: Map<string, number>; learned?: Map<string, string>; balanceFactor?: number } = {}): RoutingContext & { loads: Map<string, number> } {
  const loads = options.loads ?? new Map<string, number>();
  const learned = options.learned ?? new Map<string, string>();
  return {
    loads,
    verifyCookie: (raw) => codec.verify(raw),
    learnedBackend: (sessionId) => learned.get(sessionId),
    activeSessions: (backendId) => loads.get(backendId) ?? 0,
    balanceFactor: options.balanceFactor ?? 1.25,
  };
}
