import { test } from 'node:test';
import assert from 'node:assert/strict';

import { backendHealthUrl, describeBackendStatus, probeBackend } from '../lib/health.js';

test('backend URL defaults to the compose service name', () => {
  assert.equal(backendHealthUrl({}), 'http://backend:8000/health');
  assert.equal(backendHealthUrl({ BACKEND_URL: '' }), 'http://backend:8000/health');
});

test('backend URL honours BACKEND_URL and drops trailing slashes', () => {
  assert.equal(backendHealthUrl({ BACKEND_URL: 'http://127.0.0.1:9000/' }), 'http://127.0.0.1:9000/health');
  assert.equal(backendHealthUrl({ BACKEND_URL: 'https://api.example.test/v1//' }), 'https://api.example.test/v1/health');
});

test('a failed request is shown as unreachable', () => {
  assert.deepEqual(describeBackendStatus({ error: new Error('ECONNREFUSED') }), {
    state: 'unreachable',
    label: 'unreachable',
    detail: null,
    version: 'unknown',
    revision: 'unknown',
    built: 'unknown',
  });
  assert.equal(describeBackendStatus(undefined).label, 'unreachable');
});

test('a 2xx answer with status ok is healthy and shows the build the backend reports', () => {
  const body = { status: 'ok', version: '0.4.0', revision: '36060a1-dirty', built: '2026-11-28T06:42:42Z' };
  assert.deepEqual(describeBackendStatus({ httpStatus: 200, body }), {
    state: 'ok',
    label: 'ok',
    detail: 'HTTP 200',
    version: '0.4.0',
    revision: '36060a1-dirty',
    built: '2026-11-28T06:42:42Z',
  });
});

test('build fields the backend leaves out, blank or not as text read as unknown', () => {
  const shown = describeBackendStatus({ httpStatus: 200, body: { status: 'ok', version: ' ', revision: 7 } });
  assert.deepEqual([shown.version, shown.revision, shown.built], ['unknown', 'unknown', 'unknown']);
});

test('a 2xx answer without a JSON body still counts as ok', () => {
  assert.equal(describeBackendStatus({ httpStatus: 204, body: null }).state, 'ok');
});

test('an error status or a non-ok body is unhealthy', () => {
  const http = describeBackendStatus({ httpStatus: 503, body: null });
  assert.equal(http.state, 'unhealthy');
  assert.equal(http.label, 'unhealthy');
  assert.equal(http.detail, 'HTTP 503');

  const body = describeBackendStatus({ httpStatus: 200, body: { status: 'degraded' } });
  assert.equal(body.state, 'unhealthy');
  assert.equal(body.label, 'degraded');
});

test('probeBackend uses the injected fetch and reports its answer', async () => {
  let seen;
  const fakeFetch = async (url, init) => {
    seen = { url, init };
    return { status: 200, json: async () => ({ status: 'ok', version: '1.2.3' }) };
  };
  const result = await probeBackend({ BACKEND_URL: 'http://b:1' }, { fetchImpl: fakeFetch });
  assert.equal(seen.url, 'http://b:1/health');
  assert.equal(seen.init.cache, 'no-store');
  assert.ok(seen.init.signal instanceof AbortSignal);
  assert.deepEqual(result, {
    url: 'http://b:1/health',
    state: 'ok',
    label: 'ok',
    detail: 'HTTP 200',
    version: '1.2.3',
    revision: 'unknown',
    built: 'unknown',
  });
});

test('probeBackend turns a thrown error into unreachable', async () => {
  const failing = async () => {
    throw new TypeError('fetch failed');
  };
  const result = await probeBackend({}, { fetchImpl: failing });
  assert.equal(result.state, 'unreachable');
  assert.equal(result.url, 'http://backend:8000/health');
});

test('probeBackend gives up after its timeout', async () => {
  // A fetch that only settles when its abort signal fires, like a hung server.
  const hanging = (_url, init) =>
    new Promise((_resolve, reject) => {
      init.signal.addEventListener('abort', () => reject(init.signal.reason));
    });
  const started = Date.now();
  const result = await probeBackend({}, { fetchImpl: hanging, timeoutMs: 50 });
  assert.equal(result.label, 'unreachable');
  assert.ok(Date.now() - started < 2000);
});

test('a body that is not JSON does not break the probe', async () => {
  const textOnly = async () => ({ status: 200, json: async () => { throw new SyntaxError('bad json'); } });
  const result = await probeBackend({}, { fetchImpl: textOnly });
  assert.equal(result.state, 'ok');
  assert.equal(result.detail, 'HTTP 200');
});
