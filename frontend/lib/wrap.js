// Where a long value (a revision, a build date, a version) may wrap. Pure, so
// the rule is tested without a browser.

// A line may break after one of these: the places a person reading
// 2026-11-28T06:42:42Z, 0.4.0-rc.1+build.7 or 3f2c…-dirty would split it.
const SEPARATOR = /[-./:+_@]/;

/**
 * The value cut into the pieces that a line may break between: after each
 * separator, and between the date and the time of an ISO 8601 timestamp (its
 * "T" between two digits). Joined again they are the value.
 */
export function wrapPieces(value) {
  const text = String(value);
  const pieces = [];
  let start = 0;
  for (let i = 0; i < text.length - 1; i += 1) {
    const isoTime = text[i] === 'T' && /\d/.test(text[i - 1] ?? '') && /\d/.test(text[i + 1]);
    if (SEPARATOR.test(text[i]) || isoTime) {
      pieces.push(text.slice(start, i + 1));
      start = i + 1;
    }
  }
  pieces.push(text.slice(start));
  return pieces;
}
