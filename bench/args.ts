/** Option parsing the benchmarks share: a usage error, and whole-number options in a range. */

/** A fail(message) that prints `name: message` and exits 2 (a usage error). */
export function failer(name: string): (message: string) => never {
  return (message) => {
    process.stderr.write(`${name}: ${message}\n`);
    process.exit(2);
  };
}

/** Whole-number options: flag to [option key, least, most]. */
export type WholeLimits<K extends string> = Record<string, [K, number, number]>;

/**
 * Sets opts[key] from `flag N` at argv[i] (flag one of limits), failing with `unknown` when
 * argv[i] is no such flag; returns the index of N.
 */
export function readWhole<K extends string>(
  opts: Record<K, number>,
  limits: WholeLimits<K>,
  argv: string[],
  i: number,
  fail: (message: string) => never,
  unknown: string,
): number {
  const lim = limits[argv[i]];
  if (!lim) fail(unknown);
  const text = argv[i + 1];
  const want = `${argv[i]} needs a whole number in ${lim[1]}..${lim[2]}`;
  if (text === undefined) fail(want);
  // Digits only: Number() would take "" as 0, and " 5", "0x10" or "1e3" too.
  const v = /^\d{1,15}$/.test(text) ? Number(text) : Number.NaN;
  if (!(v >= lim[1] && v <= lim[2])) fail(`${want}, got ${JSON.stringify(text)}`);
  opts[lim[0]] = v;
  return i + 1;
}
