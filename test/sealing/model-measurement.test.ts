import { modelMeasurement, modelMeasurementRecord } from '../../lib/sealing/model-measurement';

const MODEL = {
  modelName: 'llama3',
  plaintextSize: 4661224676,
  sha256: '6a0746a1ec1aef3e7ec53868f220ff6e389f6f8ef87a01d77c96807de94ca2aa',
};

// Pinned: changing these bytes changes every PCR15 a verifier expects, so the record is versioned, never edited.
// Computed independently with:
//   printf 'sealed-inference/model-measurement 1\nformat sealed-inference/model 2\nname %s\nsize %s\nsha256 %s\n' \
//     llama3 4661224676 6a0746a1ec1aef3e7ec53868f220ff6e389f6f8ef87a01d77c96807de94ca2aa | sha384sum
test('the measurement record of a known model, byte for byte, and its SHA-384', () => {
  expect(modelMeasurementRecord(MODEL).toString('latin1')).toBe(
    'sealed-inference/model-measurement 1\n' +
      'format sealed-inference/model 2\n' +
      'name llama3\n' +
      'size 4661224676\n' +
      'sha256 6a0746a1ec1aef3e7ec53868f220ff6e389f6f8ef87a01d77c96807de94ca2aa\n',
  );
  expect(modelMeasurement(MODEL)).toBe(
    '98fb008a9da56ca50f155a671f69a70a2d5e712e0b2031150631a70859398c3769f132d63e7625a88411f2d54d9c0cc1',
  );
});

test('a manifest is a measured model: extra fields are ignored', () => {
  expect(modelMeasurement({ ...MODEL, chunkSize: 4194304 } as typeof MODEL)).toBe(modelMeasurement(MODEL));
});

test.each([
  ['a name outside the model-name alphabet', { modelName: 'llama\nsize 1' }, /Model name must be/],
  ['a negative size', { plaintextSize: -1 }, /plaintext size is a whole number of bytes, got -1/],
  ['a fractional size', { plaintextSize: 1.5 }, /got 1.5/],
  ['an upper-case SHA-256', { sha256: MODEL.sha256.toUpperCase() }, /64 lowercase hex characters/],
  ['a short SHA-256', { sha256: 'ab' }, /got "ab"/],
])('refuses %s', (_, change, message) => {
  expect(() => modelMeasurement({ ...MODEL, ...change })).toThrow(message);
});
