import { MalformedAttestationResponseError, parseAttestationResponse } from '../../lib/attestation';
import { printableText } from '../../lib/attestation/attestation-response';

const event = { pcr: 15, algorithm: 'sha384', digest: 'ab'.repeat(48), description: 'model llama3' };

test('decodes the document and keeps the events', () => {
  const response = parseAttestationResponse({ document: Buffer.from('cose').toString('base64'), eventLog: [event] });
  expect(response).toEqual({ document: Buffer.from('cose'), eventLog: [event] });
});

test.each([
  ['not an object', [], /expected a JSON object/],
  ['a document that is not base64', { document: 'not base64!', eventLog: [] }, /"document" must be the base64/],
  ['no event log', { document: 'AAAA' }, /"eventLog" must be an array/],
  ['a PCR out of range', { document: 'AAAA', eventLog: [{ ...event, pcr: 24 }] }, /eventLog\[0\].pcr must be a PCR index 0 to 23/],
  ['another bank', { document: 'AAAA', eventLog: [{ ...event, algorithm: 'sha256' }] }, /eventLog\[0\].algorithm must be "sha384"/],
  ['no description', { document: 'AAAA', eventLog: [event, { ...event, description: undefined }] }, /eventLog\[1\].description must be a string/],
  ['a description longer than the appliance records', { document: 'AAAA', eventLog: [{ ...event, description: 'm'.repeat(1025) }] },
    /eventLog\[0\].description must be a string of at most 1024 characters/],
  ['an event that is not an object', { document: 'AAAA', eventLog: [null] }, /eventLog\[0\].pcr/],
])('refuses %s', (_name, body, message) => {
  expect(() => parseAttestationResponse(body)).toThrow(MalformedAttestationResponseError);
  expect(() => parseAttestationResponse(body)).toThrow(message);
});

test('leaves the digest to the replay, which names a malformed one', () => {
  expect(parseAttestationResponse({ document: 'AAAA', eventLog: [{ ...event, digest: 'xyz' }] }).eventLog[0].digest).toBe('xyz');
});

test('accepts a description of 1,024 characters', () => {
  expect(parseAttestationResponse({ document: 'AAAA', eventLog: [{ ...event, description: 'm'.repeat(1024) }] }).eventLog).toHaveLength(1);
});

describe('printableText', () => {
  test('shows C0 and C1 control characters, escape sequences and line breaks included, as \\xNN', () => {
    expect(printableText('model\u001b[2K\r\n  ok\u009b1A\u007f\tllama', 100)).toBe('model\\x1b[2K\\x0d\\x0a  ok\\x9b1A\\x7f\\x09llama');
  });

  test('keeps other text, and cuts it after the maximum length', () => {
    expect(printableText('modèle llama3 · 8B', 100)).toBe('modèle llama3 · 8B');
    expect(printableText('abcdef', 4)).toBe('abcd… (2 more characters)');
    expect(printableText('\n'.repeat(3), 8)).toBe('\\x0a\\x0a… (4 more characters)');
  });
});
