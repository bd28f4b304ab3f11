import { buildHealthPayload } from '../../../lib/health.js';

// Evaluated per request: the values come from the container's environment,
// never from the build machine.
export const dynamic = 'force-dynamic';

export function GET() {
  return Response.json(buildHealthPayload(process.env), {
    headers: { 'cache-control': 'no-store' },
  });
}
