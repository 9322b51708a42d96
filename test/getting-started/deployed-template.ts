/** A synthesized template as CloudFormation would resolve it once deployed, for the values a walkthrough reads. */

interface TemplateResource {
  readonly Type: string;
  readonly Properties?: Record<string, unknown>;
}

export interface Template {
  readonly Parameters: Record<string, { Default?: string; AllowedPattern?: string }>;
  readonly Resources: Record<string, TemplateResource>;
  readonly Outputs: Record<string, { Value: unknown }>;
}

/** What the deployment made: a resource's `Ref` (attribute undefined) or `Fn::GetAtt` value. */
export type PhysicalValue = (logicalId: string, type: string, attribute?: string) => string;

const PSEUDO_PARAMETERS: Record<string, string> = {
  'AWS::Region': 'eu-west-1',
  'AWS::AccountId': '111111111111',
  'AWS::Partition': 'aws',
  'AWS::URLSuffix': 'amazonaws.com',
};

/** Resolves the intrinsics of `value` (Ref, Fn::GetAtt, Fn::Join, Fn::Base64) as CloudFormation would. */
export function resolveIntrinsics(
  template: Template,
  parameters: Record<string, string>,
  physical: PhysicalValue,
  value: unknown,
): unknown {
  const resolve = (v: unknown): unknown => resolveIntrinsics(template, parameters, physical, v);
  if (Array.isArray(value)) return value.map(resolve);
  if (typeof value !== 'object' || value === null) return value;
  const entries = Object.entries(value);
  if (entries.length === 1) {
    const [[name, argument]] = entries;
    const resourceType = (id: string) => {
      const resource = template.Resources[id];
      if (!resource) throw new Error(`no resource ${id} in the template`);
      return resource.Type;
    };
    switch (name) {
      case 'Ref': {
        const id = String(argument);
        if (id in PSEUDO_PARAMETERS) return PSEUDO_PARAMETERS[id];
        if (id in template.Parameters) {
          const given = parameters[id] ?? template.Parameters[id].Default;
          if (given === undefined) throw new Error(`parameter ${id} has no value and no default`);
          return given;
        }
        return physical(id, resourceType(id));
      }
      case 'Fn::GetAtt': {
        const [id, attribute] = argument as [string, string];
        return physical(id, resourceType(id), attribute);
      }
      case 'Fn::Join': {
        const [separator, parts] = argument as [string, unknown[]];
        return parts.map(resolve).join(separator);
      }
      case 'Fn::Base64':
        return Buffer.from(String(resolve(argument))).toString('base64');
      default:
        if (name.startsWith('Fn::')) throw new Error(`cannot resolve ${name}`);
    }
  }
  return Object.fromEntries(entries.map(([k, v]) => [k, resolve(v)]));
}

/** The one resource of `type`, with its logical id. */
export function onlyResource(template: Template, type: string): [string, TemplateResource] {
  const found = Object.entries(template.Resources).filter(([, resource]) => resource.Type === type);
  if (found.length !== 1) throw new Error(`expected one ${type}, found ${found.length}`);
  return found[0];
}
