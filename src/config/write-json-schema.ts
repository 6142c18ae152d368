/**
 * `npm run schema`: regenerate schema/lb.config.schema.json from the zod schema. The
 * file is committed so editors find it without a build; test/config-json-schema.test.ts
 * fails when it is stale.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SCHEMA_FILE, renderJsonSchema } from './json-schema.js';

/** repoRoot is the nearest directory above this file that holds package.json (works from src/ and dist/). */
function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error('cannot find the repository root (no package.json above this script)');
    dir = parent;
  }
  return dir;
}

const target = join(repoRoot(), SCHEMA_FILE);
mkdirSync(dirname(target), { recursive: true });
writeFileSync(target, renderJsonSchema());
process.stdout.write(`wrote ${SCHEMA_FILE}\n`);
