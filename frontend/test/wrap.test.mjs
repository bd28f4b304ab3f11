import { test } from 'node:test';
import assert from 'node:assert/strict';

import { wrapPieces } from '../lib/wrap.js';

test('a build date breaks between its parts and between date and time', () => {
  assert.deepEqual(wrapPieces('2026-11-28T06:42:42Z'), ['2026-', '11-', '28T', '06:', '42:', '42Z']);
});

test('a revision breaks only before its -dirty mark, never inside the hash', () => {
  const hash = '3f2c9d0e1b7a4c5d6e7f8091a2b3c4d5e6f70819';
  assert.deepEqual(wrapPieces(hash), [hash]);
  assert.deepEqual(wrapPieces(`${hash}-dirty`), [`${hash}-`, 'dirty']);
});

test('versions break after their dots and marks; words with a T stay whole', () => {
  assert.deepEqual(wrapPieces('0.4.0-rc.1+build.7'), ['0.', '4.', '0-', 'rc.', '1+', 'build.', '7']);
  assert.deepEqual(wrapPieces('unknown'), ['unknown']);
  assert.deepEqual(wrapPieces('HTTP'), ['HTTP']);
  assert.deepEqual(wrapPieces('a-'), ['a-']);
  assert.deepEqual(wrapPieces(''), ['']);
});

test('the pieces always join back into the value', () => {
  for (const value of ['http://backend:8000/health', 'T1T', '1T2', '--', 'x']) {
    assert.equal(wrapPieces(value).join(''), value);
  }
});
