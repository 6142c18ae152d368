/**
 * What a reload changes, besides the backend list: which top-level settings differ
 * between the running and the new config, and which of them take effect only after a
 * restart (the listening sockets). Pure.
 */
import { isDeepStrictEqual } from 'node:util';
import type { Config } from './schema.js';

/** Settings applied on reload without dropping connections. */
const LIVE = ['affinity', 'paths', 'trustedProxies', 'healthCheck', 'outlier', 'drain', 'timeouts', 'limits', 'errorPages', 'log', 'listen.tls', 'listen.healthPath', 'listen.proxyProtocol'] as const;
/** Settings that need a restart: the sockets are already bound. */
const RESTART = ['listen.host', 'listen.port', 'admin', 'state', 'metrics', 'listen.tls.redirectPort'] as const;

function at(config: Config, path: string): unknown {
  let value: unknown = config;
  for (const key of path.split('.')) value = (value as Record<string, unknown> | undefined)?.[key];
  return value;
}

/** settingsDiff lists changed live settings and changed restart-only settings. */
export function settingsDiff(running: Config, next: Config): { settings: string[]; needsRestart: string[] } {
  const settings = LIVE.filter((path) => !isDeepStrictEqual(at(running, path), at(next, path)));
  const needsRestart = RESTART.filter((path) => !isDeepStrictEqual(at(running, path), at(next, path)));
  return { settings: [...settings], needsRestart: [...needsRestart] };
}
