import t from 'tap';
import { formatDuration, parseDuration } from '../src/config/duration.js';

t.test('parseDuration', async (t) => {
  const cases: { input: unknown; want: number | undefined }[] = [
    { input: 0, want: 0 },
    { input: 1500, want: 1500 },
    { input: '1500', want: 1500 },
    { input: ' 250 ', want: 250 },
    { input: '500ms', want: 500 },
    { input: '5s', want: 5000 },
    { input: '1.5s', want: 1500 },
    { input: '5 s', want: 5000 },
    { input: '30m', want: 1_800_000 },
    { input: '12h', want: 43_200_000 },
    { input: '1d', want: 86_400_000 },
    { input: '0.0004s', want: 0 },
    { input: -1, want: undefined },
    { input: 1.5, want: undefined },
    { input: Number.NaN, want: undefined },
    { input: '', want: undefined },
    { input: '1.5', want: undefined },
    { input: '5 sec', want: undefined },
    { input: '5S', want: undefined },
    { input: '-5s', want: undefined },
    { input: 's', want: undefined },
    { input: true, want: undefined },
    { input: null, want: undefined },
    { input: ['5s'], want: undefined },
  ];
  for (const c of cases) t.equal(parseDuration(c.input), c.want, JSON.stringify(c.input) ?? String(c.input));
});

t.test('formatDuration', async (t) => {
  const cases: [number, string][] = [
    [0, '0ms'],
    [999, '999ms'],
    [1000, '1s'],
    [1500, '1500ms'],
    [90_000, '90s'],
    [1_800_000, '30m'],
    [7_200_000, '2h'],
    [86_400_000, '1d'],
    [172_800_000, '2d'],
  ];
  for (const [ms, want] of cases) t.equal(formatDuration(ms), want, `${ms}`);
});

t.test('formatDuration output parses back', async (t) => {
  for (const ms of [0, 1, 1000, 61_000, 3_600_000, 90 * 60_000, 86_400_000 * 3]) t.equal(parseDuration(formatDuration(ms)), ms, `${ms}`);
});
