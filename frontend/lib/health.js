// Health payload and backend-status helpers. Pure functions: every input
// (environment, fetch implementation) is passed in, so tests need no network.

export const UNKNOWN = 'unknown';
export const DEFAULT_BACKEND_URL = 'http://backend:8000';
export const DEFAULT_BACKEND_TIMEOUT_MS = 2000;

function pick(env, key) {
  const value = env && typeof env[key] === 'string' ? env[key].trim() : '';
  return value === '' ? UNKNOWN : value;
}

/** The body of GET /api/health, built from an environment object. */
export function buildHealthPayload(env = {}) {
  return {
    status: 'ok',
    version: pick(env, 'APP_VERSION'),
    revision: pick(env, 'APP_REVISION'),
    built: pick(env, 'APP_BUILT'),
  };
}

/** Where the backend's health endpoint lives, from BACKEND_URL (trailing slashes dropped). */
export function backendHealthUrl(env = {}) {
  const raw = env && typeof env.BACKEND_URL === 'string' ? env.BACKEND_URL.trim() : '';
  const base = (raw === '' ? DEFAULT_BACKEND_URL : raw).replace(/\/+$/, '');
  return `${base}/health`;
}

/**
 * Turn the outcome of probing the backend into what the page shows.
 * outcome is { error } when the request failed or timed out, otherwise
 * { httpStatus, body } with the parsed JSON body (or null). The backend's own
 * build metadata (version, revision, built) is passed on as it reported it,
 * "unknown" for what it did not report.
 */
export function describeBackendStatus(outcome) {
  if (!outcome || outcome.error !== undefined || typeof outcome.httpStatus !== 'number') {
    return { state: 'unreachable', label: 'unreachable', detail: null, ...reportedBuild({}) };
  }
  const body = outcome.body && typeof outcome.body === 'object' ? outcome.body : {};
  const reported = typeof body.status === 'string' ? body.status : null;
  const healthy = outcome.httpStatus >= 200 && outcome.httpStatus < 300 && (reported === null || reported === 'ok');
  return {
    state: healthy ? 'ok' : 'unhealthy',
    label: healthy ? 'ok' : reported ?? 'unhealthy',
    detail: `HTTP ${outcome.httpStatus}`,
    ...reportedBuild(body),
  };
}

/** version, revision and built from a health body: non-empty strings, else "unknown". */
function reportedBuild(body) {
  const field = (key) => (typeof body[key] === 'string' && body[key].trim() !== '' ? body[key].trim() : UNKNOWN);
  return { version: field('version'), revision: field('revision'), built: field('built') };
}

/** Probe the backend with a short timeout; never throws. */
export async function probeBackend(env = {}, { fetchImpl = globalThis.fetch, timeoutMs = DEFAULT_BACKEND_TIMEOUT_MS } = {}) {
  const url = backendHealthUrl(env);
  // An explicit controller and timer (cleared afterwards) rather than
  // AbortSignal.timeout(), whose unreferenced timer lets a lone process exit
  // before the abort fires.
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs);
  try {
    const res = await fetchImpl(url, {
      cache: 'no-store',
      headers: { accept: 'application/json' },
      signal: controller.signal,
    });
    let body = null;
    try {
      body = await res.json();
    } catch {
      body = null;
    }
    return { url, ...describeBackendStatus({ httpStatus: res.status, body }) };
  } catch (error) {
    return { url, ...describeBackendStatus({ error }) };
  } finally {
    clearTimeout(timer);
  }
}
