// Strings that outlive their message.

/**
 * `s` as a string of its own: equal to it, holding no reference to the text it was cut from. V8 keeps a substring
 * of 13 characters or more as a view into its parent (a sliced string) and a concatenation as its two parts (a cons
 * string), so a Call-ID or User-Agent kept in a binding kept the whole ~500-byte header text of its REGISTER alive
 * with it, and every registration's text was promoted to the old generation: 437 of the 1,276 bytes a registration
 * left alive (allocation profile of a 3,436 reg/s run, bench/tools/gc-trace.sh with ALLOC_LIVE=1). Flattening a
 * fresh concatenation copies the characters into a new flat string, and the slice after it views that copy.
 */
export function detach(s: string): string {
  return s.length < 13 ? s : (' ' + s).slice(1);
}

/** The string a record already holds when equal (a refresh then keeps nothing new), else a detached copy. */
export function keep(held: string | null | undefined, s: string): string {
  return held === s ? held : detach(s);
}
