/**
 * `servoy-lb disable ID --close` / POST /api/backends/ID/disable?close=1 (SPEC "Backend
 * states"): a disabled backend's open WebSockets stay until they close, unless the disable
 * asks to close them. The real CLI in front of simulated Servoy servers, in one process and
 * with --workers 2 (the primary tells every worker to close its tunnels).
 */
import t from 'tap';
import { execFile } from 'node:child_process';
import { join, resolve } from 'node:path';
import { request } from 'undici';
import { BrowserClient } from './helpers/browser.js';
import { adminUrlOf, lbConfig, waitFor, within } from './helpers/lb.js';
import { spawnBalancer, startSims } from './helpers/processes.js';

const WS_PATH = '/websocket/1/main/1';
const bin = join(resolve(import.meta.dirname, '..'), 'bin', 'servoy-lb');

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done) => {
    const env = { ...process.env, SERVOY_LB_ADMIN: undefined, SERVOY_LB_TOKEN: undefined, NODE_OPTIONS: undefined };
    execFile(process.execPath, [bin, ...args], { env, timeout: 60_000 }, (err, stdout, stderr) => done({ code: err ? Number(err.code ?? 1) : 0, stdout, stderr }));
  });
}

for (const workers of [1, 2]) {
  t.test(`disable keeps a backend's WebSockets open, disable --close closes them (${workers === 1 ? 'one process' : `--workers ${workers}`})`, async (t) => {
    const sims = await startSims(t, ['servoy-a', 'servoy-b', 'servoy-c']);
    const lb = await spawnBalancer(t, await lbConfig(sims, { log: { access: false } }), { args: workers > 1 ? ['--workers', String(workers)] : [], timeoutMs: 60_000 });
    const adminUrl = await adminUrlOf(lb);
    const b = new BrowserClient(lb.url);
    t.teardown(() => b.close());
    t.equal((await b.get('/')).status, 200);
    const server = b.cookie('JSESSIONID')!.split('.')[1]!;
    const sim = sims.find((s) => s.route === server)!;
    const ws = await b.openWebSocket(WS_PATH);
    t.match(await ws.next(15_000), { server, hello: true });

    const plain = await request(`${adminUrl}/api/backends/${server}/disable`, { method: 'POST' });
    t.equal(plain.statusCode, 200);
    await plain.body.dump();
    ws.send('still there?');
    t.same(await ws.next(15_000), { server, echo: 'still there?' }, 'after a plain disable the WebSocket still works');

    const closing = await cli(['disable', server, '--close', '--admin', adminUrl]);
    t.equal(closing.code, 0, closing.stderr);
    t.match(closing.stdout, new RegExp(`^${server} is disabled: .*; its open websockets are closed\\n$`));
    const closed = await within(ws.closed, 15_000);
    t.ok(closed !== undefined, 'disable --close closed the WebSocket');
    await waitFor(() => sim.websockets === 0, 15_000, 'the server side closed too');
  });
}
