// Runs before every page: gives it a Content-Security-Policy with a fresh nonce, on the response
// for the browser and on the request for Next.js, which then puts the nonce on its scripts.
import { NextResponse } from 'next/server';

import { contentSecurityPolicy, newNonce } from './lib/headers.js';

export function proxy(request) {
  const policy = contentSecurityPolicy(newNonce(), { development: process.env.NODE_ENV === 'development' });
  const headers = new Headers(request.headers);
  headers.set('Content-Security-Policy', policy);
  const response = NextResponse.next({ request: { headers } });
  response.headers.set('Content-Security-Policy', policy);
  return response;
}

// Pages only: static files and the health route run no script of the page.
export const config = {
  matcher: ['/((?!_next/static|_next/image|api/|favicon.ico|robots.txt).*)'],
};
