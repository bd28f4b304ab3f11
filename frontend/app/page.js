import { buildHealthPayload, probeBackend } from '../lib/health.js';

// Rendered on every request so the backend probe and the build metadata
// reflect the running container, not the build.
export const dynamic = 'force-dynamic';

export default async function HomePage() {
  const frontend = buildHealthPayload(process.env);
  const backend = await probeBackend(process.env);

  return (
    <main>
      <h1>ContextCleanse</h1>
      <div className="cards">
        <section className="card" aria-labelledby="fe-title">
          <h2 id="fe-title">Frontend</h2>
          <dl>
            <dt>status</dt>
            <dd className="state-ok">{frontend.status}</dd>
            <dt>version</dt>
            <dd>{frontend.version}</dd>
            <dt>revision</dt>
            <dd>{frontend.revision}</dd>
            <dt>built</dt>
            <dd>{frontend.built}</dd>
          </dl>
        </section>
        <section className="card" aria-labelledby="be-title">
          <h2 id="be-title">Backend</h2>
          <dl>
            <dt>status</dt>
            <dd className={`state-${backend.state}`}>{backend.label}</dd>
            {backend.detail ? (
              <>
                <dt>detail</dt>
                <dd>{backend.detail}</dd>
              </>
            ) : null}
            <dt>endpoint</dt>
            <dd>{backend.url}</dd>
          </dl>
        </section>
      </div>
    </main>
  );
}
