/**
 * parseExpectStatus (SPEC config `healthCheck.expectStatus`): a table of specs, the
 * statuses each accepts and refuses, and the texts it must reject.
 */
import t from 'tap';
import { parseExpectStatus } from '../src/health/active-checker.js';

const cases: { desc: string; spec: string; good: number[]; bad: number[] }[] = [
  { desc: 'single code', spec: '200', good: [200], bad: [199, 201, 204, 302, 503] },
  { desc: 'default range', spec: '200-399', good: [200, 204, 301, 302, 399], bad: [100, 199, 400, 404, 500, 503] },
  { desc: 'list', spec: '200,302', good: [200, 302], bad: [201, 301, 303, 503] },
  { desc: 'range and code', spec: '200-299,302', good: [200, 250, 299, 302], bad: [300, 301, 303, 404] },
  { desc: 'spaces around parts', spec: ' 200 , 204 ', good: [200, 204], bad: [201] },
  { desc: 'one-code range', spec: '503-503', good: [503], bad: [502, 504] },
  { desc: 'whole range', spec: '100-599', good: [100, 200, 599], bad: [99, 600] },
];

for (const c of cases) {
  t.test(c.desc, async (t) => {
    const matches = parseExpectStatus(c.spec);
    for (const status of c.good) t.equal(matches(status), true, `${c.spec} accepts ${status}`);
    for (const status of c.bad) t.equal(matches(status), false, `${c.spec} refuses ${status}`);
  });
}

const invalid: { desc: string; spec: string }[] = [
  { desc: 'empty', spec: '' },
  { desc: 'not a number', spec: 'ok' },
  { desc: 'two digits', spec: '20' },
  { desc: 'four digits', spec: '2000' },
  { desc: 'reversed range', spec: '399-200' },
  { desc: 'open range', spec: '200-' },
  { desc: 'empty list item', spec: '200,,302' },
  { desc: 'below 100', spec: '099' },
  { desc: 'above 599', spec: '200-600' },
];

for (const c of invalid) {
  t.test(`rejects ${c.desc}`, async (t) => {
    t.throws(() => parseExpectStatus(c.spec), /expectStatus/);
  });
}
