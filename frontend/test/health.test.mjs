import { test } from 'node:test';
import assert from 'node:assert/strict';

import { buildHealthPayload, UNKNOWN } from '../lib/health.js';

test('payload falls back to "unknown" for every field when the env is empty', () => {
  assert.deepEqual(buildHealthPayload({}), {
    status: 'ok',
    version: UNKNOWN,
    revision: UNKNOWN,
    built: UNKNOWN,
  });
  assert.deepEqual(buildHealthPayload(), buildHealthPayload({}));
});

test('payload takes version, revision and build date from the env', () => {
  const env = {
    APP_VERSION: '0.4.0',
    APP_REVISION: '36060a1',
    APP_BUILT: '2025-01-02T03:04:05Z',
    UNRELATED: 'ignored',
  };
  assert.deepEqual(buildHealthPayload(env), {
    status: 'ok',
    version: '0.4.0',
    revision: '36060a1',
    built: '2025-01-02T03:04:05Z',
  });
});

test('blank env values count as unknown', () => {
  const payload = buildHealthPayload({ APP_VERSION: '  ', APP_REVISION: '', APP_BUILT: 'x' });
  assert.equal(payload.version, UNKNOWN);
  assert.equal(payload.revision, UNKNOWN);
  assert.equal(payload.built, 'x');
});

test('payload is serialisable to the documented JSON keys only', () => {
  const keys = Object.keys(JSON.parse(JSON.stringify(buildHealthPayload({}))));
  assert.deepEqual(keys.sort(), ['built', 'revision', 'status', 'version']);
});
