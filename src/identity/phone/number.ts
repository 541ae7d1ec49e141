// Phone numbers: E.164 in, E.164 out, validated against libphonenumber's metadata (a number that cannot exist
// in its country is refused, not sent an SMS).

import { parsePhoneNumberFromString } from 'libphonenumber-js';

const E164 = /^\+[1-9][0-9]{1,14}$/;

/** The normalised E.164 form of `input` (which must already be "+digits"), or null when it is not a valid number. */
export function normalizeE164(input: string): string | null {
  if (!E164.test(input)) return null;
  const p = parsePhoneNumberFromString(input);
  if (!p || !p.isValid()) return null;
  return p.number;
}
