/**
 * `servoy-lb demo`: the embedded default for a first look. Starts three simulated Servoy
 * servers on loopback and the balancer in front of them, prints the URL and what to try.
 * The state file goes to a temporary folder, so a demo leaves nothing behind.
 */
import type { Command } from 'commander';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ServoySim } from '../../examples/servoy-sim.js';
import { configSchema } from '../config/schema.js';
import { createLogger } from '../log.js';
import { CliError } from './cli-error.js';
import { runUntilSignalled } from './start.js';

const ROUTES = ['servoy-a', 'servoy-b', 'servoy-c'];

/** registerDemo adds the `demo` command. */
export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description('start three simulated Servoy servers behind the balancer and print the URL')
    .option('-p, --port <port>', 'port of the balancer', '8080')
    .option('--host <host>', 'address of the balancer', '127.0.0.1')
    .option('--admin-port <port>', 'port of the admin API and dashboard (on 127.0.0.1)', '8081')
    .option('--log-level <level>', 'log level', 'info')
    .action(async (opts: { port: string; host: string; adminPort: string; logLevel: string }) => {
      const port = portNumber('--port', opts.port);
      const adminPort = portNumber('--admin-port', opts.adminPort);
      const dir = await mkdtemp(join(tmpdir(), 'servoy-lb-demo-'));
      const sims: ServoySim[] = [];
      // The simulated servers (and the ws library under them) are loaded only by `demo`, not by `start`.
      const { startServoySim } = await import('../../examples/servoy-sim.js');
      try {
        // Sessions idle out after 2 minutes (30 by default) so that a drain can be watched to its end.
        for (const route of ROUTES) sims.push(await startServoySim({ route, port: 0, sessionIdleMs: 120_000 }));
        const parsed = configSchema.safeParse({
          listen: { host: opts.host, port },
          admin: { host: '127.0.0.1', port: adminPort },
          backends: sims.map((sim) => ({ id: sim.route, url: sim.url })),
          healthCheck: { path: '/' },
          affinity: { sessionIdle: '2m' },
          // Servoy's admin pages for this machine only; the dashboard links each server's through the balancer.
          paths: [{ prefix: '/servoy-admin/', allow: ['127.0.0.1', '::1'] }],
          state: { file: join(dir, 'servoy-lb.state.json') },
          log: { level: opts.logLevel },
        });
        if (!parsed.success) throw new CliError(`--log-level: "${opts.logLevel}" is not a log level`);
        const logger = createLogger({ level: parsed.data.log.level });
        await runUntilSignalled(parsed.data, logger, {}, (balancer) => {
          process.stdout.write(demoText(balancer.url, balancer.adminUrl ?? '', sims));
        });
      } finally {
        await Promise.all(sims.map((sim) => sim.close()));
        await rm(dir, { recursive: true, force: true });
      }
    });
}

function portNumber(option: string, value: string): number {
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new CliError(`${option}: "${value}" is not a port number`);
  return port;
}

function demoText(url: string, adminUrl: string, sims: ServoySim[]): string {
  const servers = sims.map((sim) => `  ${sim.route.padEnd(9)} ${sim.url}`).join('\n');
  return `
servoy-lb demo is running: ${url}

Three simulated Servoy servers sit behind it:
${servers}

Try:
  open ${url}/ in a browser            every reload stays on the same server
  curl -si ${url}/api/whoami           a new session each time (no cookie jar): spread over the servers
  curl -si -c jar -b jar ${url}/api/whoami   (repeat it) one session, always the same server
  curl -s "${sims[0]!.url}/admin/maintenance?on=1" -X POST
                                       put servoy-a in Servoy maintenance mode (new users get 503 there)
A WebSocket at ${url.replace(/^http/, 'ws')}/websocket/1/main/1 reaches the server of its session.

Administer it (dashboard: ${adminUrl}/, with a link to each server's /servoy-admin/ through the balancer):
  node bin/servoy-lb status --admin ${adminUrl}
  node bin/servoy-lb drain servoy-a --wait --admin ${adminUrl}     users finish on servoy-a (sessions idle out after 2 minutes here), new ones go elsewhere
  node bin/servoy-lb undrain servoy-a --admin ${adminUrl}
Press Ctrl+C to stop.

`;
}
