import { Validations } from 'aws-cdk-lib';
import { IConstruct } from 'constructs';
import { acknowledgeCompliance } from './compliance-acknowledgment';

/**
 * Acknowledges, on `scope` and everything under it, what the packs flag on the functions behind a deploy-time custom
 * resource that reads the EC2 API (`functions` names them in the reasons): the managed logging policy, no reserved
 * concurrency, no dead-letter queue, no VPC. CloudFormation alone invokes them, synchronously, during deployments.
 */
export function acknowledgeDeployTimeFunctions(scope: IConstruct, functions: string): void {
  Validations.of(scope).acknowledge({
    id: 'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]',
    reason: `Logs are all that ${functions} may write; the managed policy grants exactly that.`,
  });
  acknowledgeCompliance(
    scope,
    {
      rule: 'LambdaConcurrency',
      reason: 'Invoked only by CloudFormation during deployments of this stack; it serves no traffic.',
    },
    {
      rule: 'LambdaDLQ',
      reason: 'Invoked synchronously by CloudFormation, which reports the failure and rolls back.',
    },
    {
      rule: 'LambdaInsideVPC',
      reason: 'Calls only the EC2 API, which an isolated VPC cannot reach; it handles no model, key or prompt.',
    },
  );
}
