import { EVERY_RESPONSE } from './lib/headers.js';
import { buildId, serverActionsKey } from './reproducible.mjs';

// Drawn at random on every build unless set: derived from the sources instead (see reproducible.mjs).
process.env.NEXT_SERVER_ACTIONS_ENCRYPTION_KEY ||= serverActionsKey();

/** @type {import('next').NextConfig} */
const nextConfig = {
  // A hash of the sources instead of a random id: one commit, one image (see reproducible.mjs).
  generateBuildId: async () => buildId(),
  // Self-contained server (server.js + traced node_modules) for the production image.
  output: 'standalone',
  // No image optimisation at run time: the app serves no raster images through
  // next/image, and this keeps the native image library out of the server bundle.
  images: { unoptimized: true },
  // The image optimiser's native library (sharp and its per-platform @img/*
  // binaries) would otherwise be traced into the standalone server. It is
  // never loaded with unoptimised images, and the copy from the build machine
  // would be for the wrong platform in a cross-built image. The '*' key also
  // matches Next.js's own server trace ('next-server'), not only the routes.
  outputFileTracingExcludes: {
    '*': ['**/node_modules/sharp/**/*', '**/node_modules/@img/**/*'],
  },
  poweredByHeader: false,
  // The page's Content-Security-Policy carries a nonce per response: proxy.js sets it.
  async headers() {
    const headers = Object.entries(EVERY_RESPONSE).map(([key, value]) => ({ key, value }));
    return [{ source: '/:path*', headers }];
  },
  reactStrictMode: true,
};

export default nextConfig;
