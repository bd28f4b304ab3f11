import { test } from 'node:test';
import assert from 'node:assert/strict';

import { EVERY_RESPONSE, contentSecurityPolicy, newNonce } from '../lib/headers.js';
import nextConfig from '../next.config.mjs';

/** The policy as a map of directive to its sources. */
function directives(policy) {
  return new Map(policy.split('; ').map((d) => {
    const [name, ...sources] = d.split(' ');
    return [name, sources];
  }));
}

test('the production policy runs only scripts with the nonce and frames nowhere', () => {
  const nonce = newNonce();
  const p = directives(contentSecurityPolicy(nonce));
  assert.deepEqual(p.get('script-src'), [`'self'`, `'nonce-${nonce}'`, `'strict-dynamic'`]);
  assert.deepEqual(p.get('style-src'), [`'self'`, `'nonce-${nonce}'`]);
  assert.deepEqual(p.get('frame-ancestors'), [`'none'`]);
  assert.deepEqual(p.get('object-src'), [`'none'`]);
  assert.deepEqual(p.get('default-src'), [`'self'`]);
  for (const [name, sources] of p) {
    for (const weak of [`'unsafe-inline'`, `'unsafe-eval'`, '*', 'http:', 'https:']) {
      assert.ok(!sources.includes(weak), `${name} allows ${weak}`);
    }
  }
});

test('development adds only what next dev needs', () => {
  const nonce = newNonce();
  const p = directives(contentSecurityPolicy(nonce, { development: true }));
  assert.ok(p.get('script-src').includes(`'unsafe-eval'`));
  assert.deepEqual(p.get('connect-src'), [`'self'`, 'ws:']);
  assert.deepEqual(p.get('frame-ancestors'), [`'none'`]);
});

test('each nonce is fresh and a bad one is refused', () => {
  const seen = new Set(Array.from({ length: 100 }, () => newNonce()));
  assert.equal(seen.size, 100);
  for (const n of seen) assert.match(n, /^[A-Za-z0-9+/]{22}==$/);
  assert.throws(() => contentSecurityPolicy("x' 'unsafe-inline"), /nonce/);
  assert.throws(() => contentSecurityPolicy(''), /nonce/);
});

test('every response carries nosniff, a referrer policy and a frame refusal', async () => {
  assert.deepEqual(EVERY_RESPONSE, {
    'X-Content-Type-Options': 'nosniff',
    'Referrer-Policy': 'no-referrer',
    'X-Frame-Options': 'DENY',
  });
  const rules = await nextConfig.headers();
  assert.equal(rules.length, 1);
  assert.equal(rules[0].source, '/:path*');
  assert.deepEqual(Object.fromEntries(rules[0].headers.map((h) => [h.key, h.value])), EVERY_RESPONSE);
});
