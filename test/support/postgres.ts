// PostgreSQL for tests: the server on 127.0.0.1:5432 (`.ci/run` starts it), one fresh schema per
// test so parallel runs never collide. Without a reachable server the PostgreSQL tests say why and
// skip, except where THREATBRIDGE_REQUIRE_PG=1 (CI), where that is a failure.
import { randomBytes } from 'node:crypto';
import pg from 'pg';

export const TEST_PG_URL = process.env['THREATBRIDGE_TEST_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/postgres';

let probe: Promise<string | null> | null = null;

/** null when reachable, else why not. */
export function postgresUnavailable(): Promise<string | null> {
  probe ??= (async () => {
    const client = new pg.Client({ connectionString: TEST_PG_URL, connectionTimeoutMillis: 3000 });
    try {
      await client.connect();
      await client.query('SELECT 1');
      return null;
    } catch (err) {
      return `${(err as Error).message || (err as Error).name} at ${TEST_PG_URL.replace(/:[^:@/]*@/, ':***@')}`;
    } finally {
      await client.end().catch(() => undefined);
    }
  })();
  return probe;
}

/** In a mocha `before`: skip the suite (or fail in CI) when PostgreSQL cannot be reached. */
export async function requirePostgres(ctx: Mocha.Context): Promise<void> {
  const why = await postgresUnavailable();
  if (!why) return;
  if (process.env['THREATBRIDGE_REQUIRE_PG'] === '1') throw new Error(`PostgreSQL is required here but unreachable: ${why}`);
  console.log(`      (skipping PostgreSQL tests: ${why}; start it with .ci/run or set THREATBRIDGE_TEST_PG_URL)`);
  ctx.skip();
}

export function freshSchemaName(): string {
  return `tb_test_${process.pid}_${randomBytes(4).toString('hex')}`;
}

export async function dropSchema(schema: string): Promise<void> {
  const client = new pg.Client({ connectionString: TEST_PG_URL });
  await client.connect();
  try {
    await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  } finally {
    await client.end();
  }
}
