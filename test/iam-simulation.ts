/**
 * Asking an independent IAM policy simulator (@cloud-copilot/iam-simulate) what AWS decides for a request, given the
 * policies a stack synthesizes: shared by the tests of one key's policy and of a deployment split across accounts.
 */
import {
  type EvaluationResult,
  runSimulation,
  runUnsafeSimulation,
  type Simulation,
  type SimulationRequestPrincipal,
} from '@cloud-copilot/iam-simulate';
import { nitroTpmPcrConditionKey, PcrMeasurements, pinnedPcrs } from '../lib/shared/measurements';
import { FORMAT_CONTEXT_KEY, MODEL_CONTEXT_KEY } from '../lib/shared/model-identity';

/** A request's condition keys and their values. */
export type Context = Record<string, string | string[]>;

/** The CloudFormation pseudo parameters of a stack in `account` and `region`. */
export function pseudoParameters(account: string, region: string): Record<string, string> {
  return { 'AWS::Partition': 'aws', 'AWS::AccountId': account, 'AWS::Region': region, 'AWS::URLSuffix': 'amazonaws.com' };
}

/**
 * Replaces the intrinsics a policy may contain with plain strings: `Ref` of a pseudo parameter or of a name in
 * `references`, `Fn::GetAtt` of a `LogicalId.Attribute` in `references`, and `Fn::Join`.
 */
export function resolveIntrinsics(value: unknown, references: Record<string, string>): unknown {
  if (Array.isArray(value)) return value.map((item) => resolveIntrinsics(item, references));
  if (value === null || typeof value !== 'object') return value;
  const entries = Object.entries(value);
  const [name, argument] = entries.length === 1 ? entries[0] : [];
  if (name === 'Ref' && typeof argument === 'string' && argument in references) return references[argument];
  if (name === 'Fn::GetAtt' && Array.isArray(argument) && argument.join('.') in references) {
    return references[argument.join('.')];
  }
  if (name === 'Fn::Join') {
    const [separator, parts] = argument as [string, unknown[]];
    return parts.map((part) => resolveIntrinsics(part, references)).join(separator);
  }
  if (name === 'Ref' || name?.startsWith('Fn::')) {
    throw new Error(`Cannot resolve ${JSON.stringify(value)}: import principals by ARN in this test`);
  }
  return Object.fromEntries(entries.map(([k, v]) => [k, resolveIntrinsics(v, references)]));
}

/** One request, and the policies that decide it. */
export interface SimulatedRequest {
  readonly principal: SimulationRequestPrincipal;
  readonly action: string;
  readonly resource: string;
  /** The account that owns `resource`. */
  readonly resourceAccount: string;
  readonly context?: Context;
  /** The principal's identity policies, as policy documents. */
  readonly identityPolicies?: object[];
  /** The resource's policy: a key policy or a bucket policy. */
  readonly resourcePolicy: object;
}

const ENCRYPTION_CONTEXT_PAIR = /^kms:EncryptionContext:/i;

/**
 * What the simulator decides for `request`.
 *
 * `runSimulation` validates the policies, the action, the resource and the request's context keys, but it drops
 * `kms:EncryptionContext:<key>` from the request: it only recognises variable keys after a '/'
 * (`aws:PrincipalTag/<tag>`), not after a ':'. The decision therefore comes from `runUnsafeSimulation`, the same
 * engine fed the full context unvalidated, once the validated run has shown that nothing else was dropped; where
 * nothing was dropped, both runs must agree.
 */
export async function simulate(request: SimulatedRequest): Promise<EvaluationResult> {
  const simulation: Simulation = {
    request: {
      principal: request.principal,
      action: request.action,
      resource: { resource: request.resource, accountId: request.resourceAccount },
      contextVariables: { ...principalArnOf(request.principal), ...request.context },
    },
    identityPolicies: (request.identityPolicies ?? []).map((policy, i) => ({ name: `identity${i + 1}`, policy })),
    serviceControlPolicies: [],
    resourceControlPolicies: [],
    resourcePolicy: request.resourcePolicy,
  };
  const validated = await runSimulation(simulation, { simulationMode: 'Strict' });
  if (validated.resultType !== 'single') throw new Error(JSON.stringify(validated, null, 2));
  const ignored = validated.result.ignoredContextKeys ?? [];
  expect(ignored.filter((key) => !ENCRYPTION_CONTEXT_PAIR.test(key))).toEqual([]);
  // The unsafe engine loads a bare resource policy without the name its analysis reads; a policy already validated
  // (just above) carries one, in the plain-object form @cloud-copilot/iam-policy's createValidatedPolicy() returns.
  const named = { __validated: true, policyDocument: simulation.resourcePolicy, metadata: { name: 'resource' }, errors: [] };
  const decision = runUnsafeSimulation({ ...simulation, resourcePolicy: named }, { simulationMode: 'Strict' });
  if (ignored.length === 0) expect(decision).toBe(validated.overallResult);
  return decision;
}

/**
 * `aws:PrincipalArn`, which AWS sets on every request and the simulator does not derive: for a session of a role,
 * the role's ARN (a role in no path, as the constructs create).
 */
function principalArnOf(principal: SimulationRequestPrincipal): Context {
  if (typeof principal !== 'string') return {};
  const session = /^arn:(aws[a-z-]*):sts::(\d{12}):assumed-role\/([^/]+)\/[^/]+$/.exec(principal);
  if (session) return { 'aws:PrincipalArn': `arn:${session[1]}:iam::${session[2]}:role/${session[3]}` };
  return /^arn:aws[a-z-]*:iam::\d{12}:(role|user)\//.test(principal) ? { 'aws:PrincipalArn': principal } : {};
}

/** The condition keys KMS derives from a request's encryption context. */
export function encryptionContext(pairs: Record<string, string>): Context {
  const context: Context = { 'kms:EncryptionContextKeys': Object.keys(pairs) };
  for (const [key, value] of Object.entries(pairs)) context[`kms:EncryptionContext:${key}`] = value;
  return context;
}

/** The encryption context of a sealed model's data key, optionally with pairs it should not have. */
export function sealedModelContext(model: string, extraPairs: Record<string, string> = {}): Context {
  return encryptionContext({ [MODEL_CONTEXT_KEY]: model, [FORMAT_CONTEXT_KEY]: '1', ...extraPairs });
}

/** The condition keys of a NitroTPM attestation document reporting `measurements`. */
export function attestationReporting(measurements: PcrMeasurements): Context {
  return Object.fromEntries(pinnedPcrs(measurements).map(({ index, value }) => [nitroTpmPcrConditionKey(index), value]));
}

/** The model owner's key and bucket, with their resource policies as deployed. */
export interface OwnerResources {
  readonly account: string;
  readonly keyArn: string;
  readonly keyPolicy: object;
  readonly bucketName: string;
  readonly bucketPolicy: object;
  /** The object requests name unless told otherwise: the sealed model. */
  readonly sealedModelKey: string;
}

/** Requests on the owner's key and on objects of the owner's bucket, each decided with that resource's policy. */
export function requestsOn(owner: OwnerResources) {
  return {
    onKey: (principal: string, action: string, identityPolicies: object[], context?: Context) =>
      simulate({
        principal, action, resource: owner.keyArn, resourceAccount: owner.account, context, identityPolicies,
        resourcePolicy: owner.keyPolicy,
      }),
    onModel: (principal: string, action: string, identityPolicies: object[], objectKey = owner.sealedModelKey) =>
      simulate({
        principal, action, resource: `arn:aws:s3:::${owner.bucketName}/${objectKey}`, resourceAccount: owner.account,
        identityPolicies, resourcePolicy: owner.bucketPolicy,
      }),
  };
}
