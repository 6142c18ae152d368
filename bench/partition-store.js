// PartitionStore at 100,000 partitions: cost of a new assignment (durable append included),
// of get(), of loading, of compaction, and the file sizes. Needs `npx tsc -p .` first.
//   node bench/partition-store.js [--partitions 100000] [--new 10000]
// Prints a markdown table and writes bench/results/partition-store.json.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync, openSync, fsyncSync, closeSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { ROOT, writeResult } from './lib.js';

const { PartitionStore, partitionFiles } = await import(join(ROOT, 'dist/src/state/partition-store.js'));

const { values } = parseArgs({ options: { partitions: { type: 'string', default: '100000' }, new: { type: 'string', default: '10000' } } });
const N = Number(values.partitions);
const NEW = Number(values.new);
const dir = mkdtempSync(join(tmpdir(), 'servoy-lb-partitions-'));
const round = (x, digits = 1) => Math.round(x * 10 ** digits) / 10 ** digits;
const key = (i) => `tenant-${String(i).padStart(7, '0')}.example.com`;
const backends = ['servoy-a', 'servoy-b', 'servoy-c', 'servoy-d'];

function percentiles(samples) {
  const s = Float64Array.from(samples).sort();
  const at = (p) => s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
  return { n: s.length, p50: at(50), p99: at(99), max: s[s.length - 1] };
}
const us = (p) => ({ n: p.n, p50_us: round(p.p50 * 1000), p99_us: round(p.p99 * 1000), max_us: round(p.max * 1000) });
const size = (file) => {
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
};
const sizes = (files) => ({ snapshot: size(files.snapshot), journal: size(files.journal), prev: size(files.prev), journalPrev: size(files.journalPrev) });

/** Opens the store in a fresh node process (cold, as at start-up) and returns open()'s wall time in ms. */
function coldLoad(base, runs = 3) {
  const script = `const t0 = performance.now(); const { PartitionStore } = await import(${JSON.stringify(join(ROOT, 'dist/src/state/partition-store.js'))});
globalThis.gc(); const h0 = process.memoryUsage().heapUsed;
const t1 = performance.now(); const c1 = process.cpuUsage(); const s = PartitionStore.open(${JSON.stringify(base)}); const c2 = process.cpuUsage(c1); const t2 = performance.now();
globalThis.gc(); const heap = process.memoryUsage().heapUsed - h0;
console.log(JSON.stringify({ ms: t2 - t1, cpu: (c2.user + c2.system) / 1000, heap, size: s.size, lines: s.loadReport.journalLines, base: s.loadReport.base })); await s.close();`;
  const results = [];
  for (let i = 0; i < runs; i++) results.push(JSON.parse(execFileSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', script]).toString()));
  const ms = results.map((r) => r.ms).sort((a, b) => a - b);
  const cpu = results.map((r) => r.cpu).sort((a, b) => a - b);
  return { median_ms: round(ms[Math.floor(ms.length / 2)]), max_ms: round(ms[ms.length - 1]), median_cpu_ms: round(cpu[Math.floor(cpu.length / 2)]), heap_mib: round(results[0].heap / 2 ** 20), size: results[0].size, journalLines: results[0].lines, base: results[0].base };
}

const result = { partitions: N, machine: { cpus: cpus().length, loadavg_at_start: loadavg().map((x) => round(x, 2)) } };
// Calibration, in a fresh process: allocation-heavy work (what loading is) varies a lot between
// machines (a VM that faults in fresh memory slowly is many times slower); compare with yours.
result.machine.calibration = JSON.parse(
  execFileSync(process.execPath, [
    '-e',
    `let t = performance.now(); const a = []; for (let i = 0; i < 1e6; i++) a.push({ k: 'x' + i, b: 'y', t: i });
const objects = performance.now() - t; t = performance.now(); Buffer.allocUnsafe(64 * 2 ** 20).fill(1);
console.log(JSON.stringify({ million_small_objects_ms: Math.round(objects), fill_fresh_64mib_ms: Math.round(performance.now() - t) }));`,
  ]).toString(),
);

// 1. Fill N partitions (every one a durable append), as a balancer meeting N tenants would.
const base = join(dir, 'servoy-lb.state.json');
const files = partitionFiles(base);
// No compaction during the fill, so step 1b can measure a journal of N lines: more than a
// running store leaves (it compacts past N / 4 lines), an upper bound for a store that never did.
let store = PartitionStore.open(base, { compactEvery: 10 * N });
let t0 = performance.now();
for (let i = 0; i < N; i++) store.assign(key(i), backends[i % backends.length]);
result.fill = { ms: round(performance.now() - t0), per_assign_us: round(((performance.now() - t0) * 1000) / N, 2) };
result.files_journal_only = sizes(files);
await store.close();
result.load_journal_only = coldLoad(base);

// 2. Compaction at N (in the background: wall time, and the longest stall of the event loop).
store = PartitionStore.open(base);
/** The longest gap between 1 ms timer ticks while `work` runs: how long the event loop was blocked. */
async function longestGap(work) {
  let last = performance.now();
  let gap = 0;
  const ticker = setInterval(() => {
    const now = performance.now();
    gap = Math.max(gap, now - last);
    last = now;
  }, 1);
  await work();
  clearInterval(ticker);
  return gap;
}
// Baseline: the same measurement while nothing runs (scheduler noise of this machine).
const baselineGap = await longestGap(() => new Promise((resolve) => setTimeout(resolve, 1000)));
t0 = performance.now();
const cpu0 = process.cpuUsage();
let report;
const compactionGap = await longestGap(async () => {
  report = await store.compact();
});
const compactCpu = process.cpuUsage(cpu0);
result.compaction = {
  wall_ms: round(performance.now() - t0),
  records: report.records,
  snapshot_bytes: report.snapshotBytes,
  cpu_ms: round((compactCpu.user + compactCpu.system) / 1000),
  longest_event_loop_gap_ms: round(compactionGap),
  baseline_longest_gap_idle_ms: round(baselineGap),
};
// The same work done synchronously, for comparison: serialise everything, write, fsync.
{
  const records = store.entries(0, N);
  const s0 = performance.now();
  const text = `{"format":"servoy-lb-partitions","version":1,"partitions":[\n${records.map((r) => JSON.stringify(r)).join(',\n')}\n]}\n`;
  const s1 = performance.now();
  const tmp = join(dir, 'sync-compaction.tmp');
  writeFileSync(tmp, text);
  const fd = openSync(tmp, 'r+');
  fsyncSync(fd);
  closeSync(fd);
  const s2 = performance.now();
  result.compaction.sync_equivalent_ms = { serialise: round(s1 - s0), write_and_fsync: round(s2 - s1), total: round(s2 - s0) };
  rmSync(tmp);
}
result.files_after_compaction = sizes(files);
await store.close();
result.load_snapshot = coldLoad(base);

// 3. NEW new assignments with N existing, each timed on its own (durable write included).
store = PartitionStore.open(base);
const assignTimes = [];
for (let i = N; i < N + NEW; i++) {
  const a = performance.now();
  store.assign(key(i), backends[i % backends.length]);
  assignTimes.push(performance.now() - a);
}
result.assign_new = us(percentiles(assignTimes));

// 4. get(): a random existing key each time; per call, and the mean over a tight loop.
const getTimes = [];
let found = 0;
for (let i = 0; i < 100_000; i++) {
  const k = key(Math.floor(Math.random() * (N + NEW)));
  const a = performance.now();
  const r = store.get(k);
  getTimes.push(performance.now() - a);
  if (r) found++;
}
const keys = Array.from({ length: 1_000_000 }, () => key(Math.floor(Math.random() * (N + NEW))));
for (const k of keys) if (store.get(k)) found++; // warm: hashes of the key strings computed once
t0 = performance.now();
const getCpu0 = process.cpuUsage();
for (const k of keys) if (store.get(k)) found++;
const getCpu = process.cpuUsage(getCpu0);
result.get = { ...us(percentiles(getTimes)), loop_mean_ns: round(((performance.now() - t0) * 1e6) / keys.length), loop_cpu_ns: round(((getCpu.user + getCpu.system) * 1e3) / keys.length), found };

// entries(): the first page after a change sorts all keys; the next pages use the cache.
t0 = performance.now();
store.entries(0, 100);
const firstPage = performance.now() - t0;
t0 = performance.now();
store.entries(50_000, 100);
result.entries = { first_page_after_change_ms: round(firstPage), next_page_ms: round(performance.now() - t0, 3) };

// 5. Moves and assignments while a compaction runs in the background (event loop shared).
{
  const during = [];
  const compaction = store.compact();
  let i = N + NEW;
  let moves = 0;
  let done = false;
  compaction.then(() => (done = true));
  while (!done) {
    for (let n = 0; n < 20; n++, i++) {
      const a = performance.now();
      store.assign(key(i), backends[i % backends.length]);
      during.push(performance.now() - a);
      store.move(key(Math.floor(Math.random() * N)), backends[Math.floor(Math.random() * backends.length)], true);
      moves++;
    }
    await new Promise((resolve) => setImmediate(resolve));
  }
  result.assign_during_compaction = { ...us(percentiles(during)), compaction_ms: (await compaction).ms, moves };
}

// 6. fsyncEachAppend (survives power loss too): the cost of a disk flush per change.
await store.close();
{
  const fsyncStore = PartitionStore.open(base, { fsyncEachAppend: true });
  const times = [];
  const start = fsyncStore.size;
  for (let i = 0; i < 1000; i++) {
    const a = performance.now();
    fsyncStore.assign(`fsync-${start + i}`, 'servoy-a');
    times.push(performance.now() - a);
  }
  result.assign_with_fsync = us(percentiles(times));
  await fsyncStore.close();
}

// 7. Worst-case load: a snapshot of N plus a journal just under the compaction threshold (N / 4 lines).
{
  const compactor = PartitionStore.open(base);
  await compactor.compact();
  const n = compactor.size;
  await compactor.close();
  // A journal of moves just under max(compactEvery, size / 4) lines: the longest a running store leaves.
  const w = PartitionStore.open(base, { compactEvery: 10 * n });
  for (let i = 0; i < n / 4 - 10; i++) w.move(key(i % N), backends[(i + 1) % backends.length], false);
  await w.close();
  result.files_worst_case = sizes(files);
  result.load_worst_case = coldLoad(base);
}

result.machine.loadavg_at_end = loadavg().map((x) => round(x, 2));
rmSync(dir, { recursive: true, force: true });

const kib = (b) => `${round(b / 1024)} KiB`;
const table = [
  '| measure | value |',
  '| --- | --- |',
  `| fill ${N} (one durable append each) | ${result.fill.ms} ms (${result.fill.per_assign_us} µs/assign) |`,
  `| assign new, ${N} existing (${NEW} timed) | p50 ${result.assign_new.p50_us} µs, p99 ${result.assign_new.p99_us} µs, max ${result.assign_new.max_us} µs |`,
  `| assign new during a background compaction | p50 ${result.assign_during_compaction.p50_us} µs, p99 ${result.assign_during_compaction.p99_us} µs, max ${result.assign_during_compaction.max_us} µs |`,
  `| assign new with fsyncEachAppend | p50 ${result.assign_with_fsync.p50_us} µs, p99 ${result.assign_with_fsync.p99_us} µs, max ${result.assign_with_fsync.max_us} µs |`,
  `| get() | p50 ${result.get.p50_us} µs, p99 ${result.get.p99_us} µs (timer-bound); warm loop ${result.get.loop_mean_ns} ns wall, ${result.get.loop_cpu_ns} ns CPU |`,
  `| entries(): first page after a change (sort) / next page | ${result.entries.first_page_after_change_ms} ms / ${result.entries.next_page_ms} ms |`,
  `| load, snapshot ${N} + empty journal (cold process) | ${result.load_snapshot.median_ms} ms median wall (${result.load_snapshot.median_cpu_ms} ms CPU), ${result.load_snapshot.max_ms} ms max |`,
  `| load, journal only (${N} lines; more than the store leaves) | ${result.load_journal_only.median_ms} ms median wall (${result.load_journal_only.median_cpu_ms} ms CPU), ${result.load_journal_only.max_ms} ms max |`,
  `| load, worst case: snapshot + ${result.load_worst_case.journalLines} journal lines | ${result.load_worst_case.median_ms} ms median wall (${result.load_worst_case.median_cpu_ms} ms CPU), ${result.load_worst_case.max_ms} ms max |`,
  `| compaction at ${N} (background) | ${result.compaction.wall_ms} ms wall, ${result.compaction.cpu_ms} ms CPU; longest event-loop stall ${result.compaction.longest_event_loop_gap_ms} ms (idle baseline ${result.compaction.baseline_longest_gap_idle_ms} ms) |`,
  `| same work done synchronously | ${result.compaction.sync_equivalent_ms.total} ms (serialise ${result.compaction.sync_equivalent_ms.serialise}, write+fsync ${result.compaction.sync_equivalent_ms.write_and_fsync}) |`,
  `| snapshot file at ${N} | ${kib(result.files_after_compaction.snapshot)} |`,
  `| journal at ${N} assignments | ${kib(result.files_journal_only.journal)} |`,
  `| worst-case journal (${N} / 4 moves) | ${kib(result.files_worst_case.journal)} |`,
  `| heap held by a store of ${N} (after load, GC'd) | ${result.load_snapshot.heap_mib} MiB |`,
  `| machine | ${result.machine.cpus} CPUs, load average ${result.machine.loadavg_at_start[0]} at start, ${result.machine.loadavg_at_end[0]} at end |`,
  `| calibration (fresh process): 1e6 small objects / fill 64 MiB of fresh memory | ${result.machine.calibration.million_small_objects_ms} ms / ${result.machine.calibration.fill_fresh_64mib_ms} ms |`,
].join('\n');
console.log(table);
writeResult('partition-store', result);
