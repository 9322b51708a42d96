import { MalformedAttestationResponseError, parseAttestationResponse } from '../../lib/attestation';

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
  ['an event that is not an object', { document: 'AAAA', eventLog: [null] }, /eventLog\[0\].pcr/],
])('refuses %s', (_name, body, message) => {
  expect(() => parseAttestationResponse(body)).toThrow(MalformedAttestationResponseError);
  expect(() => parseAttestationResponse(body)).toThrow(message);
});

test('leaves the digest to the replay, which names a malformed one', () => {
  expect(parseAttestationResponse({ document: 'AAAA', eventLog: [{ ...event, digest: 'xyz' }] }).eventLog[0].digest).toBe('xyz');
});
