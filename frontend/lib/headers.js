// Security headers of the frontend: the Content-Security-Policy (with a fresh nonce per page,
// which Next.js puts on its own scripts) and the headers every response carries.

/** Headers on every response, pages, API routes and static files alike. */
export const EVERY_RESPONSE = Object.freeze({
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  // For browsers that predate CSP's frame-ancestors; the policy says the same.
  'X-Frame-Options': 'DENY',
});

/**
 * The page's Content-Security-Policy. Scripts run only with this response's nonce (Next.js adds
 * it to the scripts it writes when it finds the policy on the request); 'strict-dynamic' lets
 * those load the page's chunks. `next dev` also evaluates code (React's refresh) and reloads
 * over a WebSocket, so development allows those two and nothing else more.
 */
export function contentSecurityPolicy(nonce, { development = false } = {}) {
  if (!/^[A-Za-z0-9+/=]{16,}$/.test(nonce)) {
    throw new Error('a CSP nonce must be base64 of at least 12 random bytes');
  }
  const scripts = [`'self'`, `'nonce-${nonce}'`, `'strict-dynamic'`];
  if (development) scripts.push(`'unsafe-eval'`);
  return [
    `default-src 'self'`,
    `script-src ${scripts.join(' ')}`,
    `style-src 'self'${development ? ` 'unsafe-inline'` : ` 'nonce-${nonce}'`}`,
    `img-src 'self' data:`,
    `font-src 'self'`,
    `connect-src 'self'${development ? ' ws:' : ''}`,
    `object-src 'none'`,
    `base-uri 'self'`,
    `form-action 'self'`,
    `frame-ancestors 'none'`,
  ].join('; ');
}

/** A fresh nonce: 16 random bytes in base64. */
export function newNonce() {
  const bytes = new Uint8Array(16);
  globalThis.crypto.getRandomValues(bytes);
  return btoa(String.fromCharCode(...bytes));
}
