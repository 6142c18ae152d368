/**
 * Client-side helpers of the partition-*.test.ts integration tests (each file used to
 * carry its own copy): browsers closed at teardown, one keep-alive agent per test, and
 * what a simulator's answer says (which server, whether the session was lost).
 */
import { Agent } from 'undici';
import { BrowserClient, type BrowserResponse } from './browser.js';
import type { TestLike } from './processes.js';

/** A BrowserClient for `url` (options as BrowserClient's, e.g. a tenant header), closed at teardown. */
export function client(t: TestLike, url: string, opts: ConstructorParameters<typeof BrowserClient>[1] = {}): BrowserClient {
  const c = new BrowserClient(url, opts);
  t.teardown(() => c.close());
  return c;
}

/** A BrowserClient that sends `X-Tenant: tenant` on every request, closed at teardown. */
export function tenantClient(t: TestLike, url: string, tenant: string): BrowserClient {
  return client(t, url, { headers: { 'X-Tenant': tenant } });
}

/** One undici Agent for many browsers of a test (idle connections kept 2 s), closed at teardown. */
export function sharedAgent(t: TestLike): Agent {
  const agent = new Agent({ keepAliveTimeout: 2000 });
  t.teardown(() => agent.close());
  return agent;
}

/** The server that answered: `server` of the simulator's JSON body, else its X-Servoy-Server header. */
export function serverOf(res: BrowserResponse): string | undefined {
  try {
    const body = res.json<{ server?: string }>();
    if (typeof body.server === 'string') return body.server;
  } catch {
    // not JSON
  }
  const header = res.headers['x-servoy-server'];
  return typeof header === 'string' ? header : undefined;
}

/** Whether the simulator said the session was lost (X-Session-Lost, or a "session lost" JSON error). */
export function sessionLost(res: BrowserResponse): boolean {
  if (res.headers['x-session-lost'] !== undefined) return true;
  try {
    return res.json<{ error?: string }>().error === 'session lost';
  } catch {
    return false;
  }
}
