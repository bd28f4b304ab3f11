// Makes `next build` give the same output for the same sources, so that two builds of one commit
// give one image. Next.js draws two things at random on every build:
// - the build id (in every page, and a folder name under .next/static): next.config.mjs takes
//   buildId() below, a hash of what the build reads;
// - the preview-mode keys in .next/prerender-manifest.json: run as a script after `next build`,
//   this file derives them from the build id;
// - the server actions' encryption key: Next.js takes NEXT_SERVER_ACTIONS_ENCRYPTION_KEY when it
//   is set, and serverActionsKey() below derives one from the build id unless it is.
// The app uses no preview mode and no server actions, and these keys were never secret from
// anyone holding the image, which carries them; a deployment that needs them secret sets
// NEXT_SERVER_ACTIONS_ENCRYPTION_KEY at build time.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));

// What `next build` reads in the image's builder stage (see the Dockerfile's COPY lines), with
// the installed packages' own lock file standing for node_modules.
const INPUTS = ['package.json', 'next.config.mjs', 'proxy.js', 'reproducible.mjs', 'app', 'lib', 'public', 'node_modules/.package-lock.json'];

function feed(hash, root, rel) {
  const path = join(root, rel);
  if (!existsSync(path)) return;
  let entries;
  try {
    entries = readdirSync(path, { withFileTypes: true });
  } catch {
    hash.update(`file ${rel}\0`).update(readFileSync(path)).update('\0');
    return;
  }
  for (const e of entries.map((e) => e.name).sort()) feed(hash, root, join(rel, e));
}

export function buildId(root = here) {
  const hash = createHash('sha256');
  for (const input of INPUTS) feed(hash, root, input);
  return hash.digest('hex').slice(0, 21);
}

// A 32-byte key, base64, as Next.js expects it.
export function serverActionsKey(id = buildId()) {
  return derive(id, 'server-actions', 32, 'base64');
}

function derive(id, label, bytes, encoding) {
  return createHash('sha256').update(`${id}:${label}`).digest().subarray(0, bytes).toString(encoding);
}

// Next.js keeps the preview keys in two files (the manifest, and server/preview-props.json since
// Next.js 15): both get the same derived keys.
export function pinPreviewKeys(nextDir) {
  const file = join(nextDir, 'prerender-manifest.json');
  if (!existsSync(file)) return false;
  const id = readFileSync(join(nextDir, 'BUILD_ID'), 'utf8').trim();
  const preview = {
    previewModeId: derive(id, 'preview-id', 16, 'hex'),
    previewModeSigningKey: derive(id, 'preview-signing', 32, 'hex'),
    previewModeEncryptionKey: derive(id, 'preview-encryption', 32, 'hex'),
  };
  const manifest = JSON.parse(readFileSync(file, 'utf8'));
  manifest.preview = preview;
  writeFileSync(file, JSON.stringify(manifest));
  const props = join(nextDir, 'server', 'preview-props.json');
  if (existsSync(props)) writeFileSync(props, JSON.stringify(preview, null, 2));
  return true;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const nextDir = join(process.cwd(), '.next');
  for (const dir of [nextDir, join(nextDir, 'standalone', '.next')]) pinPreviewKeys(dir);
}
