/**
 * The JSON Schema for lb.config.json, generated from the zod schema so that the two can
 * never disagree. Editors use it (via `"$schema": "./schema/lb.config.schema.json"`) for
 * completion, hover help and red squiggles. It describes what a user may *write*: defaults
 * are not required, durations are numbers or strings, any string value may be a
 * `${ENV_NAME}` reference (SPEC "Config file"), and a number or true/false may be exactly one.
 */
import { z } from 'zod';
import { configSchema } from './schema.js';

/** Where the generated schema lives, relative to the repository root (`npm run schema` writes it). */
export const SCHEMA_FILE = 'schema/lb.config.schema.json';

type JsonObject = { [key: string]: unknown };

const ENV_REFERENCE: JsonObject = {
  type: 'string',
  pattern: '\\$\\{[A-Za-z_][A-Za-z0-9_]*\\}',
  description: 'A value containing "${ENV_NAME}", read from the environment when the config is loaded.',
};
/** A number or true/false setting may be exactly one `"${ENV_NAME}"` (load.ts converts it; env-scalars.ts). */
const WHOLE_ENV_REFERENCE: JsonObject = {
  type: 'string',
  pattern: '^\\$\\{[A-Za-z_][A-Za-z0-9_]*\\}$',
  description: 'Exactly "${ENV_NAME}": the variable holds the number (or true/false), read when the config is loaded.',
};
/** Keys that only annotate a schema node; they stay outside an env-reference anyOf. */
const ANNOTATIONS = ['title', 'description', 'default', 'examples'];

/** buildJsonSchema returns the JSON Schema (draft 2020-12) of lb.config.json. */
export function buildJsonSchema(): JsonObject {
  const schema = z.toJSONSchema(configSchema, {
    io: 'input',
    target: 'draft-2020-12',
    override: ({ zodSchema, jsonSchema }) => {
      // zod leaves out defaults of transformed values (durations); the parsed default (ms) is valid input too.
      if (zodSchema instanceof z.ZodDefault && jsonSchema.default === undefined) {
        jsonSchema.default = zodSchema._zod.def.defaultValue as z.core.JSONSchema.BaseSchema['default'];
      }
    },
  }) as JsonObject;
  const { $schema, title, description, $defs, ...rest } = clean(schema) as JsonObject;
  return { $schema, title, description, ...rest, $defs: { ...($defs as JsonObject | undefined), envReference: ENV_REFERENCE, wholeEnvReference: WHOLE_ENV_REFERENCE } };
}

/** renderJsonSchema is the exact text of the schema file: pretty-printed, with a trailing newline. */
export function renderJsonSchema(): string {
  return `${JSON.stringify(buildJsonSchema(), null, 2)}\n`;
}

/**
 * clean drops zod's noise (JavaScript's safe-integer bounds, its private "starts_with"
 * format) and lets every constrained string also be an env reference, and every number or
 * true/false a whole one.
 */
function clean(node: unknown, underPropertyNames = false, inUnion = false): unknown {
  if (Array.isArray(node)) return node.map((item) => clean(item, underPropertyNames, inUnion));
  if (node === null || typeof node !== 'object') return node;
  const out: JsonObject = {};
  for (const [key, value] of Object.entries(node)) {
    if ((key === 'maximum' && value === Number.MAX_SAFE_INTEGER) || (key === 'minimum' && value === Number.MIN_SAFE_INTEGER)) continue;
    if (key === 'format' && value === 'starts_with') continue;
    out[key] = key === 'default' || key === 'examples' ? value : clean(value, underPropertyNames || key === 'propertyNames', key === 'anyOf' || key === 'oneOf');
  }
  return underPropertyNames ? out : allowEnvReference(out, inUnion);
}

/** inUnion: a branch of a union (a duration's number) is left alone; the union has its string branch. */
function allowEnvReference(node: JsonObject, inUnion: boolean): JsonObject {
  const constrained = node.pattern !== undefined || node.enum !== undefined || node.format !== undefined || (typeof node.minLength === 'number' && node.minLength > 4);
  const scalar = !inUnion && (node.type === 'number' || node.type === 'integer' || node.type === 'boolean');
  if (!scalar && (node.type !== 'string' || !constrained)) return node;
  const annotations: JsonObject = {};
  const rule: JsonObject = {};
  for (const [key, value] of Object.entries(node)) (ANNOTATIONS.includes(key) ? annotations : rule)[key] = value;
  return { ...annotations, anyOf: [rule, { $ref: scalar ? '#/$defs/wholeEnvReference' : '#/$defs/envReference' }] };
}
