// The lock file the Dockerfile's deps step hands to `npm ci`: the committed package-lock.json with
// two things filled in that make a cold install faster and smaller. The committed lock stays as
// npm wrote it; this copy lives only in that step.
//
// - `resolved`: the committed lock names no registry, so npm ci first fetched every package's
//   metadata document to find its tarball (next's alone is several megabytes). Each registry
//   package gets the tarball address npm itself assumes when it moves a lock to another registry
//   (`<registry>/<name>/-/<name without scope>-<version>.tgz`), on the registry npm is configured
//   with in the build. npm still checks every tarball against the lock's integrity hash.
// - The build platform's Next.js compiler: the step runs `npm ci --omit=optional`, because npm
//   11.5.2's lock records no libc and npm would install both Linux compilers (glibc and musl, 94 MB
//   each) and the unused image library sharp. The one compiler `next build` needs is marked
//   required here, so npm ci installs it with the rest, checked like the rest.
//
// Usage: node buildlock.mjs LOCK_IN LOCK_OUT REGISTRY
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const VERSION = /^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$/;

/** The package name of a lock entry's path (`node_modules/a/node_modules/@s/b` is `@s/b`). */
export function packageName(path) {
  const at = path.lastIndexOf('node_modules/');
  return at < 0 ? '' : path.slice(at + 'node_modules/'.length);
}

/** The @next/swc package that runs on this platform and libc. */
export function compilerFor(platform, arch, glibc) {
  return `@next/swc-${platform}-${arch}-${glibc ? 'gnu' : 'musl'}`;
}

/**
 * A copy of `lock` for `npm ci` from `registry`: tarball addresses where the lock has none, and
 * `compiler` no longer optional. Throws when the lock has no entry for `compiler` (a Next.js
 * without a compiler for this platform), naming it.
 */
export function forBuild(lock, registry, compiler) {
  const base = registry.endsWith('/') ? registry : `${registry}/`;
  const out = structuredClone(lock);
  let found = false;
  for (const [path, entry] of Object.entries(out.packages ?? {})) {
    const name = packageName(path);
    if (!name) continue;
    if (!entry.resolved && !entry.link && entry.integrity && VERSION.test(entry.version ?? '')) {
      entry.resolved = `${base}${name}/-/${name.split('/').pop()}-${entry.version}.tgz`;
    }
    if (path === `node_modules/${compiler}`) {
      delete entry.optional;
      found = true;
    }
  }
  if (!found) throw new Error(`${compiler} is not in package-lock.json: this Next.js has no compiler for the build platform`);
  return out;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [input, output, registry] = process.argv.slice(2);
  if (!input || !output || !registry) {
    console.error('usage: node buildlock.mjs LOCK_IN LOCK_OUT REGISTRY');
    process.exit(2);
  }
  const glibc = process.report.getReport().header.glibcVersionRuntime;
  const compiler = compilerFor(process.platform, process.arch, glibc);
  try {
    const lock = forBuild(JSON.parse(readFileSync(input, 'utf8')), registry, compiler);
    writeFileSync(output, `${JSON.stringify(lock, null, 2)}\n`);
  } catch (e) {
    console.error(e.message);
    process.exit(1);
  }
}
