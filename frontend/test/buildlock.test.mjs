import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

import { compilerFor, forBuild, packageName } from '../buildlock.mjs';

const committed = JSON.parse(readFileSync(new URL('../package-lock.json', import.meta.url), 'utf8'));

test('package names come from the last node_modules of a lock path, scopes kept', () => {
  assert.equal(packageName('node_modules/next'), 'next');
  assert.equal(packageName('node_modules/next/node_modules/@swc/helpers'), '@swc/helpers');
  assert.equal(packageName(''), '');
});

test('the compiler is named by platform, architecture and libc', () => {
  assert.equal(compilerFor('linux', 'x64', '2.36'), '@next/swc-linux-x64-gnu');
  assert.equal(compilerFor('linux', 'arm64', undefined), '@next/swc-linux-arm64-musl');
});

test('every registry package of the committed lock gets its tarball on the given registry', () => {
  const lock = forBuild(committed, 'https://npm.example.test/base', '@next/swc-linux-x64-musl');
  assert.equal(lock.packages['node_modules/next'].resolved, `https://npm.example.test/base/next/-/next-${lock.packages['node_modules/next'].version}.tgz`);
  const env = lock.packages['node_modules/@next/env'];
  assert.equal(env.resolved, `https://npm.example.test/base/@next/env/-/env-${env.version}.tgz`);
  const missing = Object.entries(lock.packages).filter(([path, e]) => path && !e.resolved);
  assert.deepEqual(missing, []);
  assert.equal(lock.packages[''].resolved, undefined, 'the root is no package');
});

test('only the build platform compiler stops being optional; the committed lock is untouched', () => {
  const lock = forBuild(committed, 'https://npm.example.test/', '@next/swc-linux-x64-musl');
  assert.equal(lock.packages['node_modules/@next/swc-linux-x64-musl'].optional, undefined);
  assert.equal(lock.packages['node_modules/@next/swc-linux-x64-gnu'].optional, true);
  assert.equal(lock.packages['node_modules/sharp'].optional, true);
  assert.equal(committed.packages['node_modules/@next/swc-linux-x64-musl'].optional, true);
  assert.equal(committed.packages['node_modules/next'].resolved, undefined);
});

test('an address already in the lock, a link and a non-registry version are left alone', () => {
  const lock = {
    packages: {
      '': { name: 'x' },
      'node_modules/a': { version: '1.0.0', integrity: 'sha512-a', resolved: 'https://mirror.test/a.tgz' },
      'node_modules/b': { link: true, resolved: 'packages/b' },
      'node_modules/c': { version: 'file:../c', integrity: 'sha512-c' },
      'node_modules/@next/swc-linux-x64-gnu': { version: '1.2.3-canary.4', integrity: 'sha512-s', optional: true },
    },
  };
  const out = forBuild(lock, 'https://r.test', '@next/swc-linux-x64-gnu').packages;
  assert.equal(out['node_modules/a'].resolved, 'https://mirror.test/a.tgz');
  assert.equal(out['node_modules/b'].resolved, 'packages/b');
  assert.equal(out['node_modules/c'].resolved, undefined);
  assert.equal(out['node_modules/@next/swc-linux-x64-gnu'].resolved, 'https://r.test/@next/swc-linux-x64-gnu/-/swc-linux-x64-gnu-1.2.3-canary.4.tgz');
});

test('a lock without a compiler for the platform is refused, naming it', () => {
  assert.throws(() => forBuild(committed, 'https://r.test/', '@next/swc-aix-ppc64-gnu'), /@next\/swc-aix-ppc64-gnu is not in package-lock.json/);
});
