/**
 * Makes these number fields of o doubles to V8 from the start, keeping their values (call it in
 * the constructor). A count of cycles passes 2^31, the largest small integer, after 21.5 s at
 * 100 MHz (one of ns after 2.1 s): a field V8 held as a small integer becomes a double then,
 * which retires the shape of every object of the class and deoptimizes every optimized function
 * that used one, once a process and mid-run (100 idle domains: ~20 functions, the scheduler's
 * and the run loop's, re-optimized over the next seconds; bench:scale's spiky window). A field
 * that is a double from the start never changes shape. Only for fields off the hot paths: a
 * double field is a boxed number, a load more at each read (the Cpu's counters instead stay
 * small integers, Cpu.rebase).
 */
export function storeAsDoubles<T extends object>(o: T, keys: readonly (keyof T & string)[]): void {
  const r = o as unknown as Record<string, number>;
  for (const k of keys) {
    const v = r[k];
    r[k] = 0.5;
    r[k] = v;
  }
}
