import t from 'tap';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { SCHEMA_FILE, buildJsonSchema, renderJsonSchema } from '../src/config/json-schema.js';

const root = resolve(import.meta.dirname, '..');

t.test(`${SCHEMA_FILE} is up to date`, async (t) => {
  let committed = '';
  try {
    committed = readFileSync(resolve(root, SCHEMA_FILE), 'utf8');
  } catch {
    t.fail(`${SCHEMA_FILE} is missing: run \`npm run schema\``);
    return;
  }
  if (committed === renderJsonSchema()) t.pass(`${SCHEMA_FILE} matches the zod schema`);
  else t.fail(`${SCHEMA_FILE} is stale (the zod schema changed): run \`npm run schema\` and commit the file`);
});

type Node = { [key: string]: unknown };
const at = (node: unknown, ...keys: string[]): Node => keys.reduce((n, key) => (n as Node)[key], node) as Node;

t.test('the schema describes what a user may write', async (t) => {
  const schema = buildJsonSchema();
  t.equal(schema.$schema, 'https://json-schema.org/draft/2020-12/schema');
  t.equal(schema.title, 'servoy-lb configuration');
  t.type(schema.description, 'string');
  t.same(schema.required, ['backends'], 'only backends is required: everything else has a default');
  t.equal(schema.additionalProperties, false, 'unknown keys are errors');
  t.same(Object.keys(at(schema, 'properties')).sort(), [
    '$schema', 'admin', 'affinity', 'backends', 'drain', 'errorPages', 'healthCheck', 'limits', 'listen', 'log', 'metrics', 'outlier', 'paths', 'state', 'timeouts', 'trustedProxies',
  ]);
  t.same(at(schema, 'properties', 'backends', 'items', 'required'), ['id', 'url']);

  const sessionIdle = at(schema, 'properties', 'affinity', 'properties', 'sessionIdle');
  t.equal(sessionIdle.default, 1_800_000, 'duration defaults are shown (in ms)');
  const forms = sessionIdle.anyOf as Node[];
  t.same(forms[0], { type: 'integer', minimum: 0 }, 'a duration may be milliseconds');
  t.match(forms[1], { anyOf: [{ type: 'string' }, { $ref: '#/$defs/envReference' }] }, 'or a string');

  t.match(at(schema, 'properties', 'affinity', 'properties', 'mode'), { default: 'session', anyOf: [{ enum: ['session', 'partition'] }, { $ref: '#/$defs/envReference' }] }, 'enums may be env references');
  t.match(at(schema, 'properties', 'admin', 'properties', 'token'), { type: 'string', minLength: 1 }, 'unconstrained strings stay plain');
  t.match(at(schema, 'properties', 'listen', 'properties', 'port'), { default: 8080, anyOf: [{ type: 'integer', minimum: 0, maximum: 65535 }, { $ref: '#/$defs/wholeEnvReference' }] }, 'a number may be exactly one env reference');
  t.match(at(schema, 'properties', 'metrics', 'properties', 'enabled'), { anyOf: [{ type: 'boolean' }, { $ref: '#/$defs/wholeEnvReference' }] }, 'so may true/false');
  t.match(at(schema, '$defs', 'wholeEnvReference'), { type: 'string', pattern: '^\\$\\{[A-Za-z_][A-Za-z0-9_]*\\}$' });
  t.match(at(schema, '$defs', 'envReference'), { type: 'string', pattern: '\\$\\{[A-Za-z_][A-Za-z0-9_]*\\}' });
  t.same(at(schema, 'properties', 'errorPages', 'propertyNames'), { type: 'string', enum: ['400', '403', '404', '431', '502', '503', '504'] }, 'keys are never env references');

  const text = JSON.stringify(schema);
  t.notMatch(text, String(Number.MAX_SAFE_INTEGER), 'no safe-integer noise');
  t.notMatch(text, 'starts_with', 'no zod-private formats');
  t.ok(renderJsonSchema().endsWith('}\n'), 'the file ends with a newline');
});
