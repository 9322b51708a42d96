import { matchesPattern } from './event-pattern-matcher';

const event = { source: 'aws.ec2', detail: { eventName: 'CreateTags', items: [{ id: 'a' }, { id: 'b' }], tags: ['x', 'y'] } };

test.each<[string, object, boolean]>([
  ['equal value', { source: ['aws.ec2'] }, true],
  ['one of several values (OR)', { source: ['aws.kms', 'aws.ec2'] }, true],
  ['no value equal', { source: ['aws.kms'] }, false],
  ['every field must match (AND)', { source: ['aws.ec2'], detail: { eventName: ['DeleteTags'] } }, false],
  ['nested object', { detail: { eventName: ['CreateTags'] } }, true],
  ['any element of an array of objects', { detail: { items: { id: ['b'] } } }, true],
  ['no element of an array of objects', { detail: { items: { id: ['c'] } } }, false],
  ['any element of an array of values', { detail: { tags: ['y'] } }, true],
  ['exists: true on a present field', { detail: { eventName: [{ exists: true }] } }, true],
  ['exists: true on an absent field', { detail: { userData: [{ exists: true }] } }, false],
  ['exists: false on an absent field', { detail: { userData: [{ exists: false }] } }, true],
  ['a field absent from the event', { region: ['us-east-1'] }, false],
])('%s', (_, pattern, expected) => {
  expect(matchesPattern(pattern as never, event)).toBe(expected);
});

test('refuses an operator it does not implement rather than guess', () => {
  expect(() => matchesPattern({ source: [{ prefix: 'aws.' }] }, event)).toThrow(/Unsupported event pattern operator/);
});
