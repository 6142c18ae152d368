/**
 * examples/systemd/servoy-lb.service is what an administrator copies to run servoy-lb as a
 * service: `systemd-analyze verify` must accept it without a single warning (an unknown or
 * misspelt directive is only a warning to systemd, silently ignored at run time), and the
 * settings the README promises must be there. Skips where there is no systemd-analyze.
 */
import t from 'tap';
import { execFile, spawnSync } from 'node:child_process';
import { chmod, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';

const unit = join(resolve(import.meta.dirname, '..'), 'examples', 'systemd', 'servoy-lb.service');
const analyze = ['/usr/bin/systemd-analyze', 'systemd-analyze'].find((bin) => spawnSync(bin, ['--version'], { timeout: 10_000, stdio: 'ignore' }).status === 0);

t.test('the unit has the documented settings', async (t) => {
  const text = await readFile(unit, 'utf8');
  for (const line of [
    'ExecStart=/usr/bin/servoy-lb start -c /etc/servoy-lb/lb.config.json',
    'ExecReload=/bin/kill -HUP $MAINPID',
    'Restart=on-failure',
    'LimitNOFILE=22000',
    'User=servoy-lb',
    'NoNewPrivileges=yes',
    'ProtectSystem=strict',
    'ProtectHome=yes',
    'PrivateTmp=yes',
    'ReadWritePaths=/var/lib/servoy-lb /var/log/servoy-lb',
    'CapabilityBoundingSet=CAP_NET_BIND_SERVICE',
    'AmbientCapabilities=CAP_NET_BIND_SERVICE',
    'KillSignal=SIGTERM',
    'TimeoutStopSec=45',
  ]) {
    t.ok(text.split('\n').includes(line), line);
  }
});

t.test('systemd-analyze verify accepts the unit without a warning', { skip: analyze === undefined ? 'systemd-analyze not found: cannot verify the unit here' : false }, async (t) => {
  // verify also checks that ExecStart's program exists; servoy-lb is not installed in
  // /usr/bin here, so a copy of the unit points at a stand-in. Everything else is verbatim.
  const dir = t.testdir({ 'servoy-lb': '#!/bin/sh\n' });
  await chmod(join(dir, 'servoy-lb'), 0o755);
  const copy = join(dir, 'servoy-lb.service');
  await writeFile(copy, (await readFile(unit, 'utf8')).replaceAll('/usr/bin/servoy-lb', join(dir, 'servoy-lb')));
  const result = await new Promise<{ code: number; output: string }>((done) => {
    execFile(analyze!, ['verify', copy], { timeout: 60_000 }, (err, stdout, stderr) => done({ code: err ? Number(err.code ?? 1) : 0, output: `${stdout}${stderr}` }));
  });
  t.same(result, { code: 0, output: '' });
});
