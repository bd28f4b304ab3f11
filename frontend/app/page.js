import { buildHealthPayload, probeBackend } from '../lib/health.js';
import { wrapPieces } from '../lib/wrap.js';

// Rendered on every request so the backend probe and the build metadata
// reflect the running container, not the build.
export const dynamic = 'force-dynamic';

/**
 * One row of a card. The value may wrap only where a person would split it
 * (see lib/wrap.js): a <wbr> marks each such place. data-field names the row
 * for tests and scripts, as `<service>-<field>`.
 */
function Row({ service, name, value, className }) {
  const pieces = wrapPieces(value);
  return (
    <>
      <dt>{name}</dt>
      <dd className={className} data-field={`${service}-${name}`}>
        {pieces.map((piece, i) => (
          <span key={i}>
            {i > 0 ? <wbr /> : null}
            {piece}
          </span>
        ))}
      </dd>
    </>
  );
}

function Build({ service, build }) {
  return (
    <>
      <Row service={service} name="version" value={build.version} />
      <Row service={service} name="revision" value={build.revision} />
      <Row service={service} name="built" value={build.built} />
    </>
  );
}

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
            <Row service="frontend" name="status" value={frontend.status} className="state-ok" />
            <Build service="frontend" build={frontend} />
          </dl>
        </section>
        <section className="card" aria-labelledby="be-title">
          <h2 id="be-title">Backend</h2>
          <dl>
            <Row service="backend" name="status" value={backend.label} className={`state-${backend.state}`} />
            {backend.detail ? <Row service="backend" name="detail" value={backend.detail} /> : null}
            <Build service="backend" build={backend} />
            <Row service="backend" name="endpoint" value={backend.url} />
          </dl>
        </section>
      </div>
    </main>
  );
}
