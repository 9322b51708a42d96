import { createPublicKey, randomBytes } from 'node:crypto';
import * as net from 'node:net';
import { DecryptCommand, KMSClient } from '@aws-sdk/client-kms';
import { DataKeyFailure, DataKeyUnwrapError, decryptDataKey } from '../../lib/appliance/attested-decrypt';
import { Attester } from '../../lib/appliance/attester';
import { PcrMeasurements } from '../../lib/shared/measurements';
import { createTestChain, TestChain, testPcrs } from '../attestation/test-attestation';
import { FakeKms } from './doubles/fake-kms';
import { TestAttester } from './doubles/test-attester';

const MODEL_CONTEXT = { 'sealed-inference:model': 'llama3', 'sealed-inference:format': '2' };
const ZEROS = '00'.repeat(48);

/** The image test documents describe by default: PCR4 = 48 × 0x04, PCR12 zero (embedded command line). */
const THIS_IMAGE: PcrMeasurements = { pcr4: '04'.repeat(48).toUpperCase(), pcr12: ZEROS };
const OTHER_IMAGE: PcrMeasurements = { pcr4: 'ab'.repeat(48), pcr12: 'cd'.repeat(48) };

let chain: TestChain;
let otherChain: TestChain;
let kms: FakeKms;

beforeAll(async () => {
  [chain, otherChain] = await Promise.all([createTestChain(), createTestChain()]);
});

afterEach(async () => {
  await kms?.stop();
});

async function startKms(allowedImages: PcrMeasurements[] = [OTHER_IMAGE, THIS_IMAGE]): Promise<FakeKms> {
  kms = await FakeKms.start({ trustedRoots: [chain.root.certificate], allowedImages });
  return kms;
}

interface Scenario {
  readonly attester?: Attester;
  readonly client?: KMSClient;
  readonly keyId?: string;
  readonly wrappedContext?: Record<string, string>;
  readonly encryptionContext?: Record<string, string>;
}

/** Wraps a fresh data key with the fake and asks for it back; returns both. */
async function unwrap(scenario: Scenario = {}): Promise<{ dataKey: Buffer; result: Buffer }> {
  const dataKey = randomBytes(32);
  const result = await decryptDataKey({
    kms: scenario.client ?? kms.client(),
    attester: scenario.attester ?? new TestAttester({ chain }),
    keyId: scenario.keyId ?? kms.keyArn,
    ciphertextBlob: kms.wrap(dataKey, scenario.wrappedContext ?? MODEL_CONTEXT),
    encryptionContext: scenario.encryptionContext ?? MODEL_CONTEXT,
  });
  return { dataKey, result };
}

async function failure(scenario: Scenario = {}): Promise<DataKeyUnwrapError> {
  try {
    await unwrap(scenario);
  } catch (error) {
    expect(error).toBeInstanceOf(DataKeyUnwrapError);
    return error as DataKeyUnwrapError;
  }
  throw new Error('expected decryptDataKey to fail');
}

function expectFailure(error: DataKeyUnwrapError, kind: DataKeyFailure, transient: boolean, message: RegExp): void {
  expect({ kind: error.kind, transient: error.transient }).toEqual({ kind, transient });
  expect(error.message).toMatch(message);
  expect(error.message).not.toContain('\n');
}

describe('an allowed image', () => {
  test('gets its data key back, wrapped to a fresh RSA-2048 key it attested', async () => {
    await startKms();
    const attester = new TestAttester({ chain });

    const { dataKey, result } = await unwrap({ attester });

    expect(result).toEqual(dataKey);
    expect(kms.requests).toEqual([{
      operation: 'Decrypt', withRecipient: true, keyId: kms.keyArn, encryptionContext: MODEL_CONTEXT,
    }]);
    expect(attester.requests).toHaveLength(1);
    const publicKey = createPublicKey({ key: attester.requests[0].publicKey!, format: 'der', type: 'spki' });
    expect(publicKey.asymmetricKeyDetails?.modulusLength).toBe(2048);
  });

  test('a Secure Boot image pinned by PCR7 alone', async () => {
    const pcrs = testPcrs();
    pcrs.set(7, '7e'.repeat(48));
    await startKms([{ pcr7: '7E'.repeat(48) }]);
    const { dataKey, result } = await unwrap({ attester: new TestAttester({ chain, pcrs }) });
    expect(result).toEqual(dataKey);
  });

  test('a fresh key pair each call', async () => {
    await startKms();
    const attester = new TestAttester({ chain });
    await unwrap({ attester });
    await unwrap({ attester });
    expect(attester.requests[0].publicKey!.equals(attester.requests[1].publicKey!)).toBe(false);
  });
});

describe('refusals by KMS', () => {
  test("an image whose PCRs are not in the key policy: the reason names the policy", async () => {
    await startKms([OTHER_IMAGE]);
    expectFailure(await failure(), DataKeyFailure.ATTESTATION_REJECTED, false,
      /^attestation rejected by KMS: this image's PCRs are not in the key policy of arn:aws:kms:.* \(or the instance role may not use the key\) \(AccessDeniedException: /);
  });

  test('PCR4 of one allowed image with PCR12 of another is rejected', async () => {
    await startKms([THIS_IMAGE, OTHER_IMAGE]);
    const pcrs = testPcrs();
    pcrs.set(12, OTHER_IMAGE.pcr12!);
    expectFailure(await failure({ attester: new TestAttester({ chain, pcrs }) }), DataKeyFailure.ATTESTATION_REJECTED, false,
      /PCRs are not in the key policy/);
  });

  test('a Decrypt without attestation, as from an operator with the instance role', async () => {
    await startKms();
    const command = new DecryptCommand({ KeyId: kms.keyArn, CiphertextBlob: kms.wrap(randomBytes(32), MODEL_CONTEXT),
      EncryptionContext: MODEL_CONTEXT });
    await expect(kms.client().send(command)).rejects.toMatchObject({ name: 'AccessDeniedException' });
    expect(kms.requests).toEqual([expect.objectContaining({ operation: 'Decrypt', withRecipient: false })]);
  });

  test('a data key wrapped for another model', async () => {
    await startKms();
    const error = await failure({ wrappedContext: { ...MODEL_CONTEXT, 'sealed-inference:model': 'mistral' } });
    expectFailure(error, DataKeyFailure.WRONG_CIPHERTEXT, false,
      /^the wrapped data key does not belong to KMS key arn:.* with encryption context \{"sealed-inference:model":"llama3".*\(InvalidCiphertextException/);
  });

  test('a stale attestation document', async () => {
    await startKms();
    const error = await failure({ attester: new TestAttester({ chain, age: 6 * 60 * 1000 }) });
    expectFailure(error, DataKeyFailure.ATTESTATION_INVALID, false,
      /^KMS refused the attestation document: .*at most five minutes old \(check the instance clock\).*stale-document/);
  });

  test('a document not signed by a trusted NitroTPM chain', async () => {
    await startKms();
    const error = await failure({ attester: new TestAttester({ chain: otherChain }) });
    expectFailure(error, DataKeyFailure.ATTESTATION_INVALID, false, /KMS refused the attestation document: .*unknown-root/);
  });

  test('a key that does not exist', async () => {
    await startKms();
    const error = await failure({ keyId: 'arn:aws:kms:eu-west-1:111122223333:key/00000000-0000-0000-0000-000000000000' });
    expectFailure(error, DataKeyFailure.KEY_UNUSABLE, false, /KMS key arn:.*:key\/0{8}-0{4}-0{4}-0{4}-0{12} was not found: check the key ARN and the Region/);
  });

  test('a disabled key', async () => {
    await startKms();
    kms.keyState = 'Disabled';
    expectFailure(await failure(), DataKeyFailure.KEY_UNUSABLE, false, /KMS key arn:\S+ is disabled: enable it \(DisabledException/);
  });

  test('a key pending deletion', async () => {
    await startKms();
    kms.keyState = 'PendingDeletion';
    expectFailure(await failure(), DataKeyFailure.KEY_UNUSABLE, false, /pending deletion: cancel the deletion, then enable it \(KMSInvalidStateException/);
  });
});

describe('answers the appliance refuses', () => {
  test('the data key in clear (Plaintext instead of CiphertextForRecipient)', async () => {
    await startKms();
    kms.answerInClear = true;
    expectFailure(await failure(), DataKeyFailure.PLAINTEXT_IN_CLEAR, false,
      /KMS answered with the data key in clear instead of CiphertextForRecipient .*refused/);
  });
});

describe('transient failures', () => {
  test('KMS failing with a 5xx', async () => {
    await startKms();
    kms.failNext({ status: 500, type: 'KMSInternalException', message: 'internal failure' });
    expectFailure(await failure(), DataKeyFailure.KMS_UNAVAILABLE, true,
      /KMS is throttling or failing for key .*; retry later \(KMSInternalException: internal failure\)/);
  });

  test('KMS throttling', async () => {
    await startKms();
    kms.failNext({ status: 400, type: 'ThrottlingException', message: 'Rate exceeded' });
    expectFailure(await failure(), DataKeyFailure.KMS_UNAVAILABLE, true, /retry later \(ThrottlingException: Rate exceeded\)/);
  });

  test("the client's own retries absorb one throttled answer", async () => {
    await startKms();
    kms.failNext({ status: 400, type: 'ThrottlingException', message: 'Rate exceeded' });
    const { dataKey, result } = await unwrap({ client: kms.client(2) });
    expect(result).toEqual(dataKey);
    expect(kms.requests.map((r) => r.withRecipient)).toEqual([true, true]);
  });

  test('KMS unreachable', async () => {
    await startKms();
    const closed = net.createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as net.AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const client = new KMSClient({
      endpoint: `http://127.0.0.1:${port}`, region: 'eu-west-1', maxAttempts: 1,
      credentials: { accessKeyId: 'AKIAFAKEFAKEFAKEFAKE', secretAccessKey: 'fake-secret' },
    });
    expectFailure(await failure({ client }), DataKeyFailure.KMS_UNAVAILABLE, true, /could not reach KMS for key arn:.*ECONNREFUSED/);
  });
});

describe('before KMS is asked', () => {
  test('an attester that fails', async () => {
    await startKms();
    const attester: Attester = { attest: async () => { throw new Error('TPM device /dev/tpm0 not found'); } };
    expectFailure(await failure({ attester }), DataKeyFailure.ATTESTATION_UNAVAILABLE, false,
      /could not get a NitroTPM attestation document: TPM device \/dev\/tpm0 not found/);
    expect(kms.requests).toEqual([]);
  });

  test('an attester that timed out may be retried', async () => {
    await startKms();
    const attester: Attester = {
      attest: async () => {
        throw Object.assign(new Error('nitro-tpm-attest did not finish within 30000 ms; it was stopped'), { transient: true });
      },
    };
    expectFailure(await failure({ attester }), DataKeyFailure.ATTESTATION_UNAVAILABLE, true, /did not finish within 30000 ms/);
  });

  test('bad input is refused with what to fix', async () => {
    await startKms();
    const request = {
      kms: kms.client(), attester: new TestAttester({ chain }), keyId: kms.keyArn,
      ciphertextBlob: Buffer.alloc(0), encryptionContext: MODEL_CONTEXT,
    };
    await expect(decryptDataKey(request)).rejects.toThrow(/ciphertextBlob must be 1 to 6144 bytes, got 0/);
    await expect(decryptDataKey({ ...request, ciphertextBlob: Buffer.alloc(1), keyId: ' ' }))
      .rejects.toThrow(/keyId must name the KMS key/);
    expect(kms.requests).toEqual([]);
  });
});
