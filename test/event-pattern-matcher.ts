/**
 * EventBridge event pattern matching, for the operators the tamper alarms use, as EventBridge documents them
 * (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-event-patterns.html): a pattern's fields must all
 * match (AND); a field's list of values matches if any value matches (OR); a nested object matches the event's
 * object, or any element of an array of objects; an event array matches a value if any element equals it;
 * `{ "exists": true|false }` matches a present or absent field. Any other operator is refused, not guessed at.
 */
type Pattern = { readonly [field: string]: Pattern | readonly unknown[] };

export function matchesPattern(pattern: Pattern, event: unknown): boolean {
  return Object.entries(pattern).every(([field, expected]) => {
    const actual = (event as Record<string, unknown> | null | undefined)?.[field];
    if (Array.isArray(expected)) return expected.some((value) => matchesValue(value, actual));
    const candidates = Array.isArray(actual) ? actual : [actual];
    return candidates.some((candidate) => candidate !== null && typeof candidate === 'object' && matchesPattern(expected as Pattern, candidate));
  });
}

function matchesValue(expected: unknown, actual: unknown): boolean {
  if (expected !== null && typeof expected === 'object') {
    const [operator, argument] = Object.entries(expected)[0] ?? [];
    if (operator !== 'exists' || Object.keys(expected).length !== 1) {
      throw new Error(`Unsupported event pattern operator ${JSON.stringify(expected)}`);
    }
    return (actual !== undefined) === argument;
  }
  const values = Array.isArray(actual) ? actual : [actual];
  return values.some((value) => value === expected);
}
